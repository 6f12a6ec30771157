"""Fixture `train`: run a 2D/few-shot method through the engine's Trainer for a few steps."""
from typing import Callable, Dict, List

import pytest


@pytest.fixture
def train(tmp_path) -> Callable[..., List[Dict[str, float]]]:
    from pcseg.engine.config import Config
    from pcseg.engine.trainer import Trainer
    from pcseg.methods.base import MethodConfig

    def run(method, train_set, collate_fn, steps: int, batch_size: int = 1, lr: float = 2e-3) -> List[Dict[str, float]]:
        """Train on CPU with AdamW and a linear decay; returns the Trainer's log rows (one per step)."""
        cfg = Config()
        if isinstance(getattr(method, "cfg", None), MethodConfig):
            cfg.method = method.cfg
        cfg.data.batch_size, cfg.data.num_workers = batch_size, 0
        cfg.optim.name, cfg.optim.lr = "adamw", lr
        cfg.schedule.name, cfg.schedule.power = "poly", 1.0
        cfg.train.steps, cfg.train.device, cfg.train.progress = steps, "cpu", False
        cfg.train.log_every, cfg.train.checkpoint_every = 1, steps
        cfg.train.out_dir = str(tmp_path / "run")
        trainer = Trainer(cfg, method, train_set, collate_fn)
        trainer.fit()
        return trainer.history

    return run
