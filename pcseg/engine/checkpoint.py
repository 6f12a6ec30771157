"""Checkpoints: atomic writes, RNG states, and model loading that names every mismatched key and shape."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import numpy as np
import torch
from torch import nn

from pcseg.atomic import write_atomic


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model it is loaded into."""


def save_atomic(obj: Any, path: Union[str, Path]) -> None:
    """torch.save `obj` to `path` atomically (`pcseg.atomic`): a reader (or a crash) never sees a half-written file,
    and the previous checkpoint stays intact until the new one is complete."""
    write_atomic(path, lambda handle: torch.save(obj, handle))


def load(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a checkpoint written by `save_atomic` (a dict) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path} is not a pcseg checkpoint (no 'model' entry)")
    return obj


def file_sha256(path: Union[str, Path]) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rng_state() -> Dict[str, Any]:
    """States of python's, numpy's and torch's global generators (and CUDA's when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load that reports missing keys, unexpected keys and shape mismatches together, by name.

    A checkpoint trained with another backbone or number of classes fails here with the keys and both shapes.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(_head(shapes)))
        if missing:
            parts.append(f"{len(missing)} key(s) missing from the checkpoint: " + ", ".join(_head(missing)))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(_head(unexpected)))
        raise CheckpointError(f"{source} does not fit the model ({' | '.join(parts)}); was it trained with "
                              "another model or number of classes?")
    model.load_state_dict(state)


def _head(items: list, n: int = 5) -> list:
    return items if len(items) <= n else items[:n] + [f"... ({len(items) - n} more)"]
