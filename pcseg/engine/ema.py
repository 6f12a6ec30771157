"""Exponential moving average of a model's weights (the mean teacher of semi-supervised methods)."""
from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn


class EMA:
    """A frozen copy whose parameters follow `p_ema <- decay * p_ema + (1 - decay) * p` after each step.

    Buffers (BatchNorm statistics) are copied, not averaged. `module` is in eval mode and never needs gradients.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_p, p in zip(self.module.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "module": self.module.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay = state["decay"]
        self.module.load_state_dict(state["module"])
