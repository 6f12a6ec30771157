"""Your own folder through the CLI: preprocess (bad files named with their reasons, good ones written), train,
predict (also on an unlabeled folder) and render offscreen; an unlabeled folder for `pcseg select` from geometry
alone; SLidR's refusal."""
import json

import numpy as np
import pytest
import torch
from folder_helpers import add_bad_files, mixed_folder, room, write_ply, write_spec, write_txt

from pcseg.cli import main
from pcseg.engine.config import load_config

TINY = ["model.channels=[8,16,16,16,16,16,8,8]", "model.base_channels=8", "model.backend=native", "data.batch_size=2",
        "train.steps=2", "train.log_every=1", "train.checkpoint_every=2", "train.progress=false", "eval.batch_size=1"]


def test_preprocess_train_predict_visualize(tmp_path, capsys):
    src, dst = tmp_path / "my_scans", tmp_path / "prepared"
    scenes = mixed_folder(src, points=1000)
    bad = add_bad_files(src)
    assert main(["preprocess", "folder", str(src), str(dst), "--workers", "0"]) == 1
    captured = capsys.readouterr()
    for name, reason in bad.items():  # every bad file by name, with its reason
        assert f"{src / name}: " in captured.out and reason in captured.out
    assert "written 5 scenes" in captured.out and "4 failed" in captured.out
    assert "4 bad file(s) left out" in captured.err and "the 5 good scenes are in" in captured.err
    meta = json.loads((dst / "meta.json").read_text())
    assert meta["splits"]["train"] == ["train/a", "train/b", "train/c", "train/d"]
    assert meta["splits"]["val"] == ["val/e"] and meta["defaults"] == {"features": ["color"], "kind": "indoor"}
    label = np.load(dst / "scenes/train/c/label.npy")
    np.testing.assert_array_equal(label, scenes["train/c"].label)

    data = ["data.dataset=preprocessed", f"data.root={dst}"]
    run = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path)), "--out", str(run), *data, *TINY]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["meta"]["num_classes"] == 11 and state["meta"]["in_channels"] == 3

    pred = tmp_path / "pred"
    assert main(["predict", str(write_config(tmp_path)), str(run / "last.pt"), "--out", str(pred), "--split", "val",
                 "--no-progress"]) == 0
    assert "predicted 1 scenes" in capsys.readouterr().out
    labels = np.load(pred / "val/e.npy")
    assert labels.shape == (scenes["val/e"].num_points,) and 0 <= labels.min() and labels.max() < 11

    # the same model on a folder of new, unlabeled scans, read directly (no preprocessing)
    unlabeled_folder(tmp_path / "new")
    assert main(["predict", str(write_config(tmp_path)), str(run / "last.pt"), "--out", str(tmp_path / "new_pred"),
                 "--split", "train", "--no-progress", "data.dataset=folder", f"data.root={tmp_path / 'new'}"]) == 0
    assert "predicted 2 scenes" in capsys.readouterr().out
    assert np.load(tmp_path / "new_pred/scan_2.npy").shape == (room(22, 1200).num_points,)

    png = tmp_path / "e.png"
    assert main(["visualize", "--data", "preprocessed", "--root", str(dst), "--split", "val", "--scene-id", "val/e",
                 "--pred", str(pred / "val/e.npy"), "--save", str(png), "--views", "bev", "--panel-size", "96x72",
                 "--backend", "numpy"]) == 0
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB"))  # ground truth | prediction | errors, then the legend
    assert image.shape[1] >= 3 * 96 and image.shape[0] >= 72
    assert (image[:72, 2 * 96:] == (255, 0, 0)).all(axis=2).sum() > 50  # a 2-step model is mostly wrong


def write_config(tmp_path):
    path = tmp_path / "folder.yaml"
    path.write_text("data:\n  voxel_size: 0.1\nmethod:\n  name: supervised\n")
    return path


def unlabeled_folder(root):
    write_txt(root / "scan_1.txt", room(21, 1200), label=False)
    write_ply(root / "scan_2.ply", room(22, 1200), label=False)
    write_spec(root, fields={"color": ["red", "green", "blue"]}, columns=["x", "y", "z", "red", "green", "blue"],
               label_map=None, ignore=None, splits=None)


def test_select_first_labels_of_an_unlabeled_folder_from_geometry(tmp_path, capsys):
    src = tmp_path / "scans"
    unlabeled_folder(src)
    data = ["data.dataset=folder", f"data.root={src}", "data.voxel_size=0.1"]
    code = main(["select", "--points", "20", "--export", str(tmp_path / "round1"), *data])
    assert code == 2 and "give --checkpoint (or --strategy coverage" in capsys.readouterr().err
    assert main(["select", "--strategy", "coverage", "--points", "20", "--export", str(tmp_path / "round1"),
                 "--no-progress", *data]) == 0
    out = capsys.readouterr().out
    assert "picked 20 points in 2 scenes" in out
    picks = torch.load(tmp_path / "round1/picks.pt")
    assert sorted(picks) == ["scan_1", "scan_2"] and sum(len(v) for v in picks.values()) == 20
    assert (tmp_path / "round1/scan_1.csv").is_file() and (tmp_path / "round1/scan_2.ply").is_file()
    # oracle mode needs ground truth, which an unlabeled folder has none of
    code = main(["select", "--strategy", "coverage", "--points", "5", "--oracle", "--out", str(tmp_path / "b.pt"),
                 *data])
    err = capsys.readouterr().err
    assert code == 2 and "the oracle labels picks from the ground truth, and only 0 points" in err
    assert "export the picks for annotators instead of --oracle" in err and not (tmp_path / "b.pt").exists()


def test_slidr_needs_camera_images(tmp_path):
    from pcseg.pretrain import pair_dataset

    unlabeled_folder(tmp_path)
    cfg = load_config(None, ["data.dataset=folder", f"data.root={tmp_path}", "method.name=slidr"])
    with pytest.raises(ValueError, match="needs image-lidar pairs.*point clouds alone .*cannot be used for SLidR"):
        pair_dataset(cfg)
