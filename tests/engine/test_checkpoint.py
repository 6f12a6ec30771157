import math
import os

import pytest
import torch
from torch import nn

from pcseg.engine import checkpoint as ckpt
from pcseg.engine.config import ScheduleConfig
from pcseg.engine.ema import EMA
from pcseg.engine.schedules import LrFactor


def net(classes=3, hidden=8):
    return nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.Linear(hidden, classes))


def test_round_trip_and_rng(tmp_path):
    model = net()
    torch.manual_seed(3)
    state = {"model": model.state_dict(), "rng": ckpt.rng_state(), "step": 5}
    expected = torch.rand(3)
    ckpt.save_atomic(state, tmp_path / "a" / "last.pt")
    loaded = ckpt.load(tmp_path / "a" / "last.pt")
    other = net()
    ckpt.load_model_state(other, loaded["model"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    torch.manual_seed(999)
    ckpt.set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(3), expected)
    assert os.listdir(tmp_path / "a") == ["last.pt"]


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"model": {"w": torch.ones(2)}}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        ckpt.save_atomic({"model": {"w": torch.zeros(2)}, "bad": lambda: None}, path)  # lambdas do not pickle
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]  # no temp file left behind


def test_mismatch_names_keys_and_shapes():
    state = net(classes=3).state_dict()
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_model_state(net(classes=5), state, source="run/last.pt")
    msg = str(err.value)
    assert "run/last.pt does not fit" in msg
    assert "2.weight: checkpoint (3, 8) vs model (5, 8)" in msg and "2.bias: checkpoint (3,) vs model (5,)" in msg
    other = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3), nn.Linear(3, 3))
    del state["1.running_var"]
    with pytest.raises(ckpt.CheckpointError, match=r"3 key\(s\) missing from the checkpoint: 1.running_var, "
                                                   r"3.weight, 3.bias\)"):
        ckpt.load_model_state(other, state)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ckpt.CheckpointError, match=r"1 unexpected key\(s\): extra.weight"):
        ckpt.load_model_state(net(), state)


def test_unreadable_files(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="checkpoint not found"):
        ckpt.load(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="cannot read checkpoint .*junk.pt"):
        ckpt.load(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a pcseg checkpoint"):
        ckpt.load(tmp_path / "other.pt")


def test_ema_literal():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(0.9 * 1.1 + 0.1 * 2.0)
    assert not ema.module.weight.requires_grad and not ema.module.training


@pytest.mark.parametrize("name, step, expected", [
    ("poly", 0, 1.0), ("poly", 50, 0.5 ** 0.9), ("poly", 100, 0.0),
    ("cosine", 0, 1.0), ("cosine", 50, 0.5), ("cosine", 100, 0.0),
    ("onecycle", 0, 0.1), ("onecycle", 5, 1.0), ("onecycle", 100, 1e-4),
    ("onecycle", 5 + 95 // 2, 0.5 * (1 + 1e-4) + 0.5 * (1 - 1e-4) * math.cos(math.pi * 47 / 95)),
])
def test_schedule_values(name, step, expected):
    factor = LrFactor(ScheduleConfig(name=name, pct_start=0.05, div_factor=10, final_div_factor=1e3), 100)
    assert factor(step) == pytest.approx(expected)


def test_warmup():
    factor = LrFactor(ScheduleConfig(name="cosine", warmup_steps=4, min_lr_ratio=0.1), 104)
    assert [factor(t) for t in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert factor(4) == pytest.approx(1.0) and factor(104) == pytest.approx(0.1)
