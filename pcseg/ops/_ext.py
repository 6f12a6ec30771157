"""Access to the compiled extension `pcseg._C` and the input checks shared by the ops.

`has_op(name, device)` says whether `pcseg._C` is built with a kernel for op `name` on `device`; the ops call it
and otherwise run their pure-torch reference, warning once per (op, device type) through `warn_fallback`.
Op names are the ones `pcseg._C.cpu_ops()` / `cuda_ops()` list: "voxelize", "segment", "radius_query",
"knn_query", "region_partition" (and "kernel_map" from pcseg.ops.kernel_map).
"""
from __future__ import annotations

import functools
import warnings
from types import ModuleType
from typing import Optional, Set, Tuple

import torch

# The only module state: which (op, device type) fallbacks have been reported.
_WARNED: Set[Tuple[str, str]] = set()


@functools.lru_cache(maxsize=None)
def extension() -> Optional[ModuleType]:
    """The compiled module `pcseg._C`, or None when it is not built."""
    try:
        from pcseg import _C  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _C


@functools.lru_cache(maxsize=None)
def _ops(device_type: str) -> frozenset:
    ext = extension()
    if ext is None:
        return frozenset()
    if device_type == "cpu":
        return frozenset(ext.cpu_ops())
    if device_type == "cuda":
        return frozenset(ext.cuda_ops())
    return frozenset()


def has_op(name: str, device: torch.device | str) -> bool:
    """True when `pcseg._C` has a kernel for op `name` on `device` ("cpu", "cuda:0", ...)."""
    return name in _ops(torch.device(device).type)


def warn_fallback(name: str, device: torch.device | str) -> None:
    """Warn once per (op, device type) that the pure-torch reference runs instead of a kernel."""
    device_type = torch.device(device).type
    if (name, device_type) in _WARNED:
        return
    _WARNED.add((name, device_type))
    reason = "pcseg._C is not built" if extension() is None else f"pcseg._C has no {device_type} kernel for it"
    warnings.warn(
        f"pcseg.ops.{name}: {reason}; using the pure-torch reference (slower). "
        "Build the extension with `pip install --no-build-isolation -e .`.",
        RuntimeWarning,
        stacklevel=3,
    )


# ---- input checks: ValueError (TypeError for non-tensors) naming the op, the argument and the problem ----


def check_tensor(op: str, name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_points(op: str, name: str, x: object) -> torch.Tensor:
    """(N, 3) float32/float64 tensor with finite values."""
    x = check_tensor(op, name, x)
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"{op}: {name} must have shape (N, 3), got {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{op}: {name} must be float32 or float64, got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{op}: {name} contains NaN or inf")
    return x


def check_index(op: str, name: str, x: object, length: int, device: torch.device, upper: Optional[int] = None
                ) -> torch.Tensor:
    """(length,) int64 tensor on `device` with values >= 0 (and < upper when given)."""
    x = check_tensor(op, name, x)
    if x.dtype != torch.int64:
        raise ValueError(f"{op}: {name} must be int64, got {x.dtype}")
    if x.dim() != 1 or x.shape[0] != length:
        raise ValueError(f"{op}: {name} must have shape ({length},), got {tuple(x.shape)}")
    if x.device != device:
        raise ValueError(f"{op}: {name} is on {x.device}, expected {device}")
    if length:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0:
            raise ValueError(f"{op}: {name} must be >= 0, got {lo}")
        if upper is not None and hi >= upper:
            raise ValueError(f"{op}: {name} must be < {upper}, got {hi}")
    return x


def check_batch(op: str, name: str, batch: object, length: int, device: torch.device) -> Optional[torch.Tensor]:
    """None or a (length,) int64 batch vector (values >= 0) on `device`."""
    if batch is None:
        return None
    return check_index(op, name, batch, length, device)


def check_positive(op: str, name: str, value: object) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{op}: {name} must be finite and > 0, got {value}")
    return value
