import csv
import os
import re

import pytest
import torch

from pcseg.engine import checkpoint as ckpt
from pcseg.engine.config import load_config
from pcseg.engine.trainer import Trainer, TrainingDiverged
from toy import ToyData, ToyMethod, collate


def make_cfg(tmp_path, *extra):
    return load_config(overrides=[
        f"train.out_dir={tmp_path}", "train.steps=7", "train.checkpoint_every=2", "train.log_every=1",
        "data.batch_size=2", "train.progress=false", "train.ema_decay=0.9", "optim.lr=0.1", "optim.grad_clip=1.0",
        "schedule.name=poly", "schedule.warmup_steps=2", *extra])


def make_trainer(cfg, **method_args):
    torch.manual_seed(cfg.train.seed)
    return Trainer(cfg, ToyMethod(**method_args), ToyData(5, cfg.train.seed), collate)


def weights(trainer):
    return {k: v.clone() for k, v in trainer.method.state_dict().items()}


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_resume_is_exact(tmp_path, optim):
    """Stopped after 4 steps (mid-epoch: 3 batches per epoch of 5 items) and resumed in a fresh trainer whose
    global RNG differs: the same weights, EMA and per-step losses as one uninterrupted run."""
    cfg = make_cfg(tmp_path / "full", f"optim.name={optim}")
    full = make_trainer(cfg, dropout=0.3)
    full.fit()

    cfg_a = make_cfg(tmp_path / "part", f"optim.name={optim}")
    part = make_trainer(cfg_a, dropout=0.3)
    real_step = part.train_step

    def stop_after_four(batch):
        if part.step == 4:
            raise KeyboardInterrupt
        return real_step(batch)

    part.train_step = stop_after_four
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    assert ckpt.load(tmp_path / "part" / "last.pt")["step"] == 4

    torch.manual_seed(12345)  # a resumed process starts from another RNG state: the checkpoint must restore it
    resumed = Trainer(cfg_a, ToyMethod(dropout=0.3), ToyData(5, 0), collate)
    resumed.fit(resume=tmp_path / "part" / "last.pt")

    for k, v in weights(full).items():
        assert torch.equal(v, resumed.method.state_dict()[k]), k
    for k, v in full.ema.module.state_dict().items():
        assert torch.equal(v, resumed.ema.module.state_dict()[k]), k
    losses_full = [(r["step"], r["loss"], r["ce"]) for r in full.history if "loss" in r]
    losses_resumed = [(r["step"], r["loss"], r["ce"]) for r in resumed.history if "loss" in r]
    assert losses_resumed == losses_full[4:]
    # the CSV of the resumed run reads like the uninterrupted one
    with open(tmp_path / "part" / "log.csv") as f:
        resumed_rows = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f) if r["loss"]]
    assert resumed_rows == [(s, l) for s, l, _ in losses_full]


def test_logs_and_checkpoint_contents(tmp_path):
    trainer = make_trainer(make_cfg(tmp_path))
    result = trainer.fit()
    assert result["step"] == 7
    state = ckpt.load(tmp_path / "last.pt")
    assert set(state) >= {"model", "optimizer", "scheduler", "scaler", "ema", "rng", "step", "epoch", "config"}
    assert state["step"] == 7 and state["epoch"] == 2 and state["config"]["train"]["steps"] == 7
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 8))
    assert {"loss", "ce", "l2", "lr", "sec_per_step"} <= set(rows[0])
    # poly with 2 warm-up steps: lr after step 1 is peak * 2/3, after the last step 0
    assert float(rows[0]["lr"]) == pytest.approx(0.1 * 2 / 3) and float(rows[-1]["lr"]) == 0.0
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tb"))
    assert (tmp_path / "config.yaml").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    trainer = make_trainer(make_cfg(tmp_path), nan_at_call=6)
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit()
    msg = str(err.value)
    assert "step 6" in msg and "ce=nan" in msg and "last.pt (step 4) is kept" in msg
    state = ckpt.load(tmp_path / "last.pt")
    assert state["step"] == 4
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    # the kept checkpoint resumes
    again = make_trainer(make_cfg(tmp_path))
    again.fit(resume=tmp_path / "last.pt")
    assert again.step == 7


def test_resume_refuses_other_training_settings(tmp_path):
    make_trainer(make_cfg(tmp_path, "train.steps=4")).fit()
    before = ckpt.load(tmp_path / "last.pt")["model"]
    other = make_trainer(make_cfg(tmp_path, "train.steps=7", "optim.lr=0.05", "train.seed=3"))
    with pytest.raises(ckpt.CheckpointError) as err:
        other.fit(resume=tmp_path / "last.pt")
    msg = str(err.value)
    assert str(tmp_path / "last.pt") in msg and "optim.lr: 0.1 -> 0.05" in msg and "train.seed: 0 -> 3" in msg
    assert "train.steps" not in msg and other.step == 0  # nothing was loaded, the checkpoint is untouched
    assert all(torch.equal(v, ckpt.load(tmp_path / "last.pt")["model"][k]) for k, v in before.items())
    # a setting the checkpoint does not know yet (added to pcseg since) counts as its default
    state = ckpt.load(tmp_path / "last.pt")
    del state["config"]["method"]["label_smoothing"]
    ckpt.save_atomic(state, tmp_path / "last.pt")
    # where it runs, how often it logs and a longer schedule may change
    longer = make_trainer(make_cfg(tmp_path, "train.steps=7", "train.log_every=3", "train.threads=1",
                                   "eval.tta_rotations=2"))
    longer.fit(resume=tmp_path / "last.pt")
    assert longer.step == 7


def test_resume_takes_a_budget_file_by_its_contents(tmp_path):
    first, copy = tmp_path / "first.pt", tmp_path / "copy.pt"
    first.write_bytes(b"budget")
    copy.write_bytes(b"budget")
    make_trainer(make_cfg(tmp_path / "run", "train.steps=2", f"data.budget={first}")).fit()
    moved = make_trainer(make_cfg(tmp_path / "run", "train.steps=3", f"data.budget={copy}"))
    moved.fit(resume=tmp_path / "run" / "last.pt")
    assert moved.step == 3
    # all labels: budget_seed is unused; a sampler spec: it draws the points
    make_trainer(make_cfg(tmp_path / "all", "train.steps=2")).fit()
    make_trainer(make_cfg(tmp_path / "all", "train.steps=3", "data.budget_seed=1")).fit(
        resume=tmp_path / "all" / "last.pt")
    make_trainer(make_cfg(tmp_path / "spec", "train.steps=2", "data.budget=ratio:0.5")).fit()
    with pytest.raises(ckpt.CheckpointError, match="data.budget_seed: 0 -> 1"):
        make_trainer(make_cfg(tmp_path / "spec", "train.steps=3", "data.budget=ratio:0.5", "data.budget_seed=1")).fit(
            resume=tmp_path / "spec" / "last.pt")
    # the checkpoint keeps the sha256 of the budget it started with: other contents are refused, under any path
    other = tmp_path / "other.pt"
    other.write_bytes(b"other budget")
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"data.budget: {copy} -> {other}")):
        make_trainer(make_cfg(tmp_path / "run", "train.steps=4", f"data.budget={other}")).fit(
            resume=tmp_path / "run" / "last.pt")
    copy.write_bytes(b"edited budget")
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"data.budget: {copy} (its contents changed since")):
        make_trainer(make_cfg(tmp_path / "run", "train.steps=4", f"data.budget={copy}")).fit(
            resume=tmp_path / "run" / "last.pt")
    make_trainer(make_cfg(tmp_path / "run", "train.steps=4", f"data.budget={first}")).fit(
        resume=tmp_path / "run" / "last.pt")
    # a checkpoint from before pcseg kept the digests: budget files with the same bytes
    state = ckpt.load(tmp_path / "run" / "last.pt")
    del state["file_sha256"]
    ckpt.save_atomic(state, tmp_path / "run" / "last.pt")
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"data.budget: {first} -> {copy}")):
        make_trainer(make_cfg(tmp_path / "run", "train.steps=5", f"data.budget={copy}")).fit(
            resume=tmp_path / "run" / "last.pt")
    copy.write_bytes(b"budget")
    make_trainer(make_cfg(tmp_path / "run", "train.steps=5", f"data.budget={copy}")).fit(
        resume=tmp_path / "run" / "last.pt")


def test_resume_takes_init_from_by_its_contents(tmp_path):
    make_trainer(make_cfg(tmp_path / "start", "train.steps=2")).fit()
    make_trainer(make_cfg(tmp_path / "other", "train.steps=2", "train.seed=1")).fit()
    start = tmp_path / "start" / "last.pt"
    warm = make_trainer(make_cfg(tmp_path / "warm", "train.steps=2", f"train.init_from={start}"))
    warm.fit()
    assert ckpt.load(tmp_path / "warm" / "last.pt")["file_sha256"] == {"train.init_from": ckpt.file_sha256(start)}
    moved = tmp_path / "moved" / "last.pt"
    (tmp_path / "start").rename(moved.parent)  # a moved run: its starting checkpoint has a new path
    again = make_trainer(make_cfg(tmp_path / "warm", "train.steps=3", f"train.init_from={moved}"))
    again.fit(resume=tmp_path / "warm" / "last.pt")
    assert again.step == 3 and ckpt.load(tmp_path / "warm" / "last.pt")["file_sha256"] == warm.file_digests
    other = tmp_path / "other" / "last.pt"
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"train.init_from: {moved} -> {other}")):
        make_trainer(make_cfg(tmp_path / "warm", "train.steps=4", f"train.init_from={other}")).fit(
            resume=tmp_path / "warm" / "last.pt")
    # a run that did not start from a checkpoint does not resume as one that did
    with pytest.raises(ckpt.CheckpointError, match=re.escape(f"train.init_from:  -> {moved}")):
        make_trainer(make_cfg(tmp_path / "other", "train.steps=3", f"train.init_from={moved}")).fit(
            resume=tmp_path / "other" / "last.pt")


def test_nan_before_first_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="step 1: .*no checkpoint had been written yet"):
        make_trainer(make_cfg(tmp_path), nan_at_call=1).fit()
    assert not (tmp_path / "last.pt").exists()


def test_method_must_return_loss_dict(tmp_path):
    class Bad(ToyMethod):
        def forward(self, batch):
            return super().forward(batch)["ce"]

    torch.manual_seed(0)
    trainer = Trainer(make_cfg(tmp_path), Bad(), ToyData(), collate)
    with pytest.raises(TypeError, match="must return a non-empty dict of losses"):
        trainer.fit()


class CountingToy(ToyMethod):
    """ToyMethod with a step counter buffer that a new training from its weights restarts."""

    step_buffers = ("seen",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, batch):
        self.seen += 1
        return super().forward(batch)


def test_init_from_starts_a_new_training_from_the_weights(tmp_path):
    torch.manual_seed(0)
    first = Trainer(make_cfg(tmp_path / "first", "train.steps=4"), CountingToy(), ToyData(5, 0), collate)
    first.fit()
    saved = ckpt.load(tmp_path / "first" / "last.pt")["model"]
    assert int(saved["seen"]) == 4

    cfg = make_cfg(tmp_path / "second", "train.steps=4", f"train.init_from={tmp_path / 'first' / 'last.pt'}")
    torch.manual_seed(1)
    second = Trainer(cfg, CountingToy(), ToyData(5, 0), collate)
    assert not torch.equal(second.method.net[0].weight, saved["net.0.weight"])
    second.init_weights(cfg.train.init_from)
    for k, v in saved.items():  # the weights and the EMA start from the checkpoint, the counter starts over
        expected = torch.zeros_like(v) if k == "seen" else v
        assert torch.equal(second.method.state_dict()[k], expected), k
        assert torch.equal(second.ema.module.state_dict()[k], expected), k
    assert second.optimizer.state_dict()["state"] == {}

    # fit() does the same: 4 new steps on a fresh schedule (a resume would find the work done)
    torch.manual_seed(1)
    third = Trainer(cfg, CountingToy(), ToyData(5, 0), collate)
    third.fit()
    assert third.step == 4 and int(third.method.seen) == 4
    assert ckpt.load(tmp_path / "second" / "last.pt")["config"]["train"]["init_from"] == cfg.train.init_from
    lrs = [r["lr"] for r in third.history if "lr" in r]
    assert lrs == [r["lr"] for r in first.history if "lr" in r]  # the warmup and decay start again


def test_init_from_names_a_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="train.init_from: checkpoint not found: .*nothing.pt"):
        make_trainer(make_cfg(tmp_path, f"train.init_from={tmp_path / 'nothing.pt'}")).fit()
    torch.manual_seed(0)
    Trainer(make_cfg(tmp_path / "counting", "train.steps=2"), CountingToy(), ToyData(5, 0), collate).fit()
    other = make_trainer(make_cfg(tmp_path / "toy", f"train.init_from={tmp_path / 'counting' / 'last.pt'}"))
    with pytest.raises(ckpt.CheckpointError, match="train.init_from .*counting/last.pt does not fit the model .*seen"):
        other.fit()  # another method: its extra buffer is named
    assert other.step == 0
