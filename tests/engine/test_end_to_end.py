"""The real stack on the synthetic default through the CLI: tiny scenes and model, a few steps."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pcseg.cli import main
from pcseg.data.synthetic_indoor import INDOOR_CLASSES
from pcseg.engine.demo import QUICK

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "synthetic" / "supervised.yaml")
TINY = [o for o in QUICK if not o.startswith("train.")] + ["train.steps=3", "train.checkpoint_every=2",
                                                           "train.log_every=1", "train.progress=false",
                                                           "model.backend=native"]


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "supervised full" in out and "supervised 0.1%" in out and "per-class IoU" in out
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in rows] == ["supervised full", "supervised 0.1%"]
    full, weak = rows
    assert full["labeled_points"] == full["total_points"] > 0
    assert 0 < weak["labeled_points"] < full["labeled_points"] / 100
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    from PIL import Image

    for r in rows:  # a picture of the first held-out room per run, not blank
        pixels = np.asarray(Image.open(r["png"]).convert("RGB"))
        assert r["png"] in out and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5


def test_demo_with_cpcm_row(tmp_path, capsys):
    assert main(["demo", "--quick", "--no-progress", "--with", "cpcm", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in rows] == ["supervised full", "supervised 0.1%", "cpcm 0.1%"]
    assert rows[2]["labeled_points"] == rows[1]["labeled_points"]  # the same budget as the CE row
    capsys.readouterr()
    assert main(["demo", "--quick", "--with", "hpal", "--out", str(tmp_path / "x")]) == 2
    assert "unknown row hpal; choose from cpcm" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_run_demo_generates_the_rooms_once_for_calls_sharing_sources(tmp_path, monkeypatch):
    import pcseg.engine.build as build
    from pcseg.engine.demo import run_demo

    built = []
    real = build.build_source
    monkeypatch.setattr(build, "build_source", lambda cfg, split: built.append(split) or real(cfg, split))
    sources = {}
    runs = [("supervised full", ("method.name=supervised",))]
    first = run_demo(tmp_path / "a", quick=True, progress=False, runs=runs, sources=sources)
    second = run_demo(tmp_path / "b", quick=True, progress=False, runs=runs, sources=sources)
    assert sorted(built) == ["train", "val"] and set(sources) == {"train", "val"}
    assert first[0]["total_points"] == second[0]["total_points"] > 0


def test_train_resume_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", CONFIG, "--out", str(out), *TINY]) == 0
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["step"] == 3 and state["meta"]["num_classes"] == len(INDOOR_CLASSES)
    # resume a finished run for two more steps
    assert main(["train", CONFIG, "--out", str(out), *TINY, "train.steps=5", "--resume", str(out / "last.pt")]) == 0
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 5
    capsys.readouterr()

    pred_dir = tmp_path / "pred"
    assert main(["eval", str(out / "last.pt"), "--tta", "2", "--save-predictions", str(pred_dir),
                 "--json", str(tmp_path / "m.json")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("mIoU ") and "floor" in text
    metrics = json.loads((tmp_path / "m.json").read_text())
    files = sorted(pred_dir.glob("*.npy"))
    assert [f.stem for f in files] == ["indoor_val_0000"]
    pred = np.load(files[0])
    assert pred.dtype == np.int64 and pred.min() >= 0 and pred.max() < len(INDOOR_CLASSES)
    assert len(pred) == metrics["points"]  # every original point predicted (the generator labels all points)


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", CONFIG, "--out", str(out), *TINY, "train.steps=1"]) == 0
    capsys.readouterr()
    code = main(["eval", str(out / "last.pt"), "model.channels=[8,16,32,16,16,16,8,8]"])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit the model" in err and "shape mismatch" in err and "vs model" in err
