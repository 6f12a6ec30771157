"""What every training method shares: its config base class and the calling convention.

A method is an `nn.Module` built as `Method(backbone, num_classes, cfg)` (cfg: its own `Method.Config`, a subclass
of MethodConfig). In training mode `method(batch)` returns a dict of named scalar losses (the trainer sums and logs
them); `method.predict(batch)` returns point logits (N, K) for evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MethodConfig:
    """Settings every method has; each method subclasses this as `Method.Config`."""

    name: str = field(default="supervised", metadata={"help": "training method, a key of pcseg.methods.METHODS"})
