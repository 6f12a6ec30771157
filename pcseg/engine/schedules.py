"""Learning-rate schedules over a fixed number of optimizer steps: poly, cosine, one-cycle."""
from __future__ import annotations

import math

import torch

from pcseg.engine.config import ScheduleConfig


class LrFactor:
    """Multiplier of the peak learning rate at optimizer step t in [0, total_steps] (LambdaLR's lr_lambda).

    poly      warm-up, then (1 - u)^power
    cosine    warm-up, then min_ratio + (1 - min_ratio) (1 + cos(pi u)) / 2
    onecycle  cosine rise from 1/div_factor to 1 over pct_start of the steps, then cosine fall to
              1/(div_factor * final_div_factor) (the shape of torch's OneCycleLR, without momentum cycling)
    u is the fraction of post-warm-up steps done.
    """

    def __init__(self, cfg: ScheduleConfig, total_steps: int) -> None:
        self.name = cfg.name
        self.total = max(int(total_steps), 1)
        self.warmup = min(cfg.warmup_steps, self.total - 1) if cfg.name != "onecycle" else 0
        self.power = cfg.power
        self.min_ratio = cfg.min_lr_ratio
        self.rise = max(int(round(cfg.pct_start * self.total)), 1) if cfg.name == "onecycle" else 0
        self.start = 1.0 / cfg.div_factor
        self.end = self.start / cfg.final_div_factor

    def __call__(self, step: int) -> float:
        t = min(step, self.total)
        if self.name == "onecycle":
            if t < self.rise:
                return _cos_between(self.start, 1.0, t / self.rise)
            return _cos_between(1.0, self.end, (t - self.rise) / max(self.total - self.rise, 1))
        if t < self.warmup:
            return (t + 1) / (self.warmup + 1)
        u = (t - self.warmup) / max(self.total - self.warmup, 1)
        if self.name == "poly":
            return (1.0 - u) ** self.power
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * u))


def _cos_between(a: float, b: float, u: float) -> float:
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * u))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepped once per optimizer step; its state_dict holds the step count for resuming."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LrFactor(cfg, total_steps))
