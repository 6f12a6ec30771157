"""A short CPCM run on the synthetic default with the real SpUNet, data pipeline and optimizer."""
import math

import torch

from pcseg.data import collate
from pcseg.engine.build import build_dataset, build_method, seed_everything
from pcseg.engine.config import load_config
from pcseg.engine.demo import DEMO, QUICK
from pcseg.engine.trainer import build_optimizer


def test_cpcm_losses_finite_and_decrease_on_a_fixed_batch():
    cfg = load_config(overrides=DEMO + QUICK + ("method.name=cpcm", "method.aug_weight=2.0",
                                                "data.budget=ratio:0.01", "model.backend=native"))
    seed_everything(0)
    dataset = build_dataset(cfg, "train", True)
    batch = collate([dataset[0], dataset[1]])
    assert int((batch.label >= 0).sum()) > 0
    method = build_method(cfg, dataset.num_classes, dataset.in_channels)
    optimizer = build_optimizer(cfg.optim, method.parameters())
    history = []
    for _ in range(8):
        losses = method(batch)
        assert set(losses) == {"ce", "mask_consistency", "aug_consistency"}
        assert all(math.isfinite(v.item()) for v in losses.values())
        history.append({k: v.item() for k, v in losses.items()})
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    first, last = history[0], history[-1]
    assert last["ce"] < first["ce"]
    assert sum(last.values()) < sum(first.values())
