"""`pcseg predict` and `pcseg eval --pred` on the synthetic default: round trip, resume, refusals, bad input."""
import json

import numpy as np
import pytest
import torch

from pcseg.cli import main
from pcseg.data import INDOOR_CLASSES
from pcseg.data import submission as sub
from predict_helpers import TINY_MODEL, make_checkpoint

SYNTHETIC = TINY_MODEL + ["data.dataset=synthetic_indoor", "data.num_val_scenes=2", "data.points_per_scene=3000",
                          "data.voxel_size=0.08"]
SCENES = ["indoor_val_0000", "indoor_val_0001"]
K = len(INDOOR_CLASSES)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run(tmp_path, capsys):
    config = tmp_path / "predict.yaml"
    config.write_text("train:\n  progress: false\n")

    def call(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    call.config = config
    return call


@pytest.fixture
def checkpoint(tmp_path):
    return make_checkpoint(tmp_path / "init.pt", SYNTHETIC, num_classes=K, in_channels=3)


def test_round_trip_equals_in_memory_evaluation(tmp_path, run, checkpoint):
    out = tmp_path / "pred"
    code, text, err = run("predict", run.config, checkpoint, "--out", out)
    assert code == 0, err
    assert "predicted 2 scenes (6,000 points" in text and "skipped 0" in text
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.npy" for s in SCENES] + ["pcseg_predictions.json"])
    for sid in SCENES:
        pred = np.load(out / f"{sid}.npy")
        assert pred.shape == (3000,) and pred.dtype == np.int64 and 0 <= pred.min() and pred.max() < K

    assert run("eval", "--pred", out, "--json", tmp_path / "files.json")[0] == 0
    assert run("eval", checkpoint, "--json", tmp_path / "memory.json")[0] == 0
    files = json.loads((tmp_path / "files.json").read_text())
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert files["miou"] == memory["miou"] and files["acc"] == memory["acc"] and files["points"] == memory["points"]
    np.testing.assert_equal(files["iou"], memory["iou"])
    assert files["format"] == "classes" and files["rule"] == "default" and files["scenes"] == 2
    assert np.array(files["confusion"]).shape == (K, K + 1)

    # `pcseg eval --save-predictions` writes the same files; eval --pred scores them with a config
    saved = tmp_path / "saved"
    assert run("eval", checkpoint, "--save-predictions", saved)[0] == 0
    for sid in SCENES:
        assert np.array_equal(np.load(saved / f"{sid}.npy"), np.load(out / f"{sid}.npy"))
    code, _, err = run("eval", "--pred", saved)
    assert code == 2 and "has no pcseg_predictions.json: pass --config" in err
    code, text, _ = run("eval", "--pred", saved, "--config", run.config, *SYNTHETIC)
    assert code == 0 and f"mIoU {100 * memory['miou']:.1f}" in text


def test_resume_skips_written_scenes(tmp_path, run, checkpoint):
    out = tmp_path / "pred"
    assert run("predict", run.config, checkpoint, "--out", out)[0] == 0
    first = (out / f"{SCENES[0]}.npy").stat().st_mtime_ns
    (out / f"{SCENES[1]}.npy").unlink()
    (out / f".{SCENES[1]}.npy.x1y2.tmp").write_bytes(b"left by a crash")
    code, text, _ = run("predict", run.config, checkpoint, "--out", out)
    assert code == 0 and "predicted 1 scenes" in text and "skipped 1 already written" in text
    assert (out / f"{SCENES[0]}.npy").stat().st_mtime_ns == first
    assert not list(out.glob(".*.tmp")) and (out / f"{SCENES[1]}.npy").is_file()


def test_folder_of_another_run_is_refused_unless_overwrite(tmp_path, run, checkpoint):
    out = tmp_path / "pred"
    assert run("predict", run.config, checkpoint, "--out", out)[0] == 0
    other = make_checkpoint(tmp_path / "other.pt", SYNTHETIC, num_classes=K, in_channels=3, seed=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run("predict", run.config, other, "--out", out)
    assert code == 2 and "holds predictions of another run (checkpoint_sha256 differ)" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    code, _, err = run("predict", run.config, checkpoint, "--out", out, "--tta", "2")
    assert code == 2 and "(settings differ)" in err
    code, text, _ = run("predict", run.config, other, "--out", out, "--overwrite")
    assert code == 0 and "predicted 2 scenes" in text
    assert json.loads((out / "pcseg_predictions.json").read_text())["checkpoint"] == str(other.resolve())

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run("predict", run.config, checkpoint, "--out", foreign)
    assert code == 2 and "is not empty and has no pcseg_predictions.json" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert run("predict", run.config, checkpoint, "--out", foreign, "--overwrite")[0] == 0
    assert (foreign / "notes.txt").read_text() == "mine"  # files pcseg did not write are left alone


def test_chunked_tta_probabilities(tmp_path, run, checkpoint):
    out = tmp_path / "pred"
    code, _, err = run("predict", run.config, checkpoint, "--out", out, "--max-points", "1200", "--overlap", "0.3",
                       "--tta", "2", "--flip", "x", "--scales", "1.1", "--probs")
    assert code == 0, err
    for sid in SCENES:
        pred, prob = np.load(out / f"{sid}.npy"), sub.read_probs(out, sid)
        assert pred.shape == (3000,) and prob.shape == (3000, K)
        assert np.allclose(prob.sum(1), 1, atol=1e-2)
        assert (prob[np.arange(3000), pred] >= prob.max(1) - 1e-3).all()  # the argmax, up to float16 rounding
    settings = json.loads((out / "pcseg_predictions.json").read_text())["settings"]
    assert settings["tta"] == {"rotations": 2, "flips": ["x"], "scales": [1.1]} and settings["max_points"] == 1200
    assert run("eval", "--pred", out)[0] == 0


def test_checkpoint_for_another_class_count(tmp_path, run):
    five = make_checkpoint(tmp_path / "five.pt", SYNTHETIC, num_classes=5, in_channels=3)
    code, _, err = run("predict", run.config, five, "--out", tmp_path / "pred")
    assert code == 2 and f"five.pt was trained for 5 classes, the dataset synthetic_indoor has {K}" in err
    assert not (tmp_path / "pred").exists()


def test_eval_pred_errors(tmp_path, run, checkpoint):
    out = tmp_path / "pred"
    assert run("predict", run.config, checkpoint, "--out", out)[0] == 0
    code, _, err = run("eval", checkpoint, "--pred", out)
    assert code == 2 and "--pred scores a predictions folder: give no checkpoint" in err
    code, _, err = run("eval")
    assert code == 2 and "give a checkpoint, or --pred DIR" in err
    np.save(out / f"{SCENES[0]}.npy", np.zeros(10, dtype=np.int64))
    code, _, err = run("eval", "--pred", out)
    assert code == 2 and f"{SCENES[0]}.npy: 10 predictions but scene {SCENES[0]} has 3000 points" in err
    (out / f"{SCENES[0]}.npy").unlink()
    code, _, err = run("eval", "--pred", out)
    assert code == 2 and "1 of 2 scenes of split 'val' have no prediction file" in err
    code, _, err = run("eval", "--pred", tmp_path / "nowhere")
    assert code == 2 and "predictions folder not found" in err
    code, _, err = run("predict", run.config, checkpoint, "--out", tmp_path / "p2", "--scales", "big")
    assert code == 2 and "--scales: expected comma-separated numbers" in err
