"""Predict -> files -> evaluate on datasets in the official layouts, against in-memory evaluation and against
independent restatements of the official scorers (ScanNet evaluate_semantic_label.py, SemanticKITTI
evaluate_semantics.py + np_ioueval.py) on the same files."""
import math
import shutil

import numpy as np
import pytest
import torch

from pcseg.data import S3DIS_CLASSES
from pcseg.data import submission as sub
from pcseg.engine.build import build_source, evaluate_checkpoint, load_checkpoint_config
from pcseg.engine.predict import evaluate_predictions, predict_split
from predict_helpers import (KITTI_MAP, SCANNET_IDS, TINY_MODEL, kitti_official, make_checkpoint, scannet_official,
                             write_kitti_scan, write_s3dis_room, write_scannet)

SCANNET_SCENES = ["scene0011_00", "scene0015_00"]
KITTI_SCANS = ["08/000000", "08/000001"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def setup_run(tmp_path, overrides, num_classes, in_channels):
    path = make_checkpoint(tmp_path / "init.pt", TINY_MODEL + overrides, num_classes, in_channels)
    cfg, state = load_checkpoint_config(path)
    return cfg, state, path


def cfg_names(cfg):
    return list(build_source(cfg, cfg.data.val_split).class_names)


def assert_scores_match(ours, official_iou, names):
    for name, value in zip(names, official_iou):
        if math.isnan(value):
            assert math.isnan(ours["iou"][name]), name
        else:
            assert abs(ours["iou"][name] - value) < 1e-6, name


# ------------------------------------------------------------------------------------------------- ScanNet
@pytest.fixture
def scannet(tmp_path):
    nyu40 = write_scannet(tmp_path / "scannet", SCANNET_SCENES, points=4000)
    gt = tmp_path / "gt"  # the benchmark's ground truth: nyu40 ids per vertex, as ScanNet's export script writes
    gt.mkdir()
    for sid, ids in nyu40.items():
        (gt / f"{sid}.txt").write_text("".join(f"{i}\n" for i in ids))
    cfg, state, path = setup_run(tmp_path, ["data.dataset=scannet", f"data.root={tmp_path / 'scannet'}",
                                            "data.voxel_size=0.08"], 20, 3)
    return cfg, state, path, gt


def test_scannet_round_trip_and_official_parity(tmp_path, scannet):
    cfg, state, path, gt = scannet
    out = tmp_path / "pred"
    predict_split(cfg, state, path, out, progress=False)
    pred_files = [out / f"{sid}.txt" for sid in SCANNET_SCENES]
    for f in pred_files:
        ids = np.array(f.read_text().splitlines(), dtype=np.int64)
        assert len(ids) == 4000 and np.isin(ids, SCANNET_IDS).all()  # one valid nyu40 id per vertex
    ours = evaluate_predictions(cfg, out)
    memory = evaluate_checkpoint(cfg, state, str(path))
    assert ours["miou"] == memory["miou"] and ours["acc"] == memory["acc"]
    np.testing.assert_equal(ours["iou"], memory["iou"])
    built = evaluate_checkpoint(cfg, state, str(path), scenes=build_source(cfg, cfg.data.val_split))  # source reused
    assert built["miou"] == memory["miou"] and built["acc"] == memory["acc"]
    official = scannet_official(pred_files, [gt / f.name for f in pred_files])
    assert_scores_match(ours, official.values(), cfg_names(cfg))
    assert abs(ours["miou"] - np.nanmean(list(official.values()))) < 1e-6

    # predictions with ids outside the 20 classes: they count as misses of the true class, never as hits
    rng = np.random.default_rng(5)
    for f in pred_files:
        f.write_text("".join(f"{i}\n" for i in rng.integers(0, 41, 4000)))
    ours = evaluate_predictions(cfg, out)
    official = scannet_official(pred_files, [gt / f.name for f in pred_files])
    assert_scores_match(ours, official.values(), cfg_names(cfg))
    assert abs(ours["miou"] - np.nanmean(list(official.values()))) < 1e-6


def test_scannet_missing_point_file_stops_cleanly(tmp_path, scannet):
    cfg, state, path, _ = scannet
    ply = tmp_path / "scannet" / "scans" / SCANNET_SCENES[1] / f"{SCANNET_SCENES[1]}_vh_clean_2.ply"
    ply.rename(ply.with_suffix(".bak"))
    out = tmp_path / "pred"
    with pytest.raises(FileNotFoundError, match=f"scene {SCANNET_SCENES[1]}: PLY file .*_vh_clean_2.ply does not "
                                                "exist; the 1 scenes written so far are complete"):
        predict_split(cfg, state, path, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["pcseg_predictions.json", f"{SCANNET_SCENES[0]}.txt"]
    assert len((out / f"{SCANNET_SCENES[0]}.txt").read_text().splitlines()) == 4000
    ply.with_suffix(".bak").rename(ply)
    report = predict_split(cfg, state, path, out, progress=False)  # resumes with the missing scene
    assert report["written"] == 1 and report["skipped"] == 1


# ------------------------------------------------------------------------------------------ SemanticKITTI
def kitti_layout(root, scans, points, seed=0):
    rng = np.random.default_rng(seed)
    return {sid: write_kitti_scan(root, sid, points, rng) for sid in scans}


def check_kitti(tmp_path, root, scans, points):
    cfg, state, path = setup_run(tmp_path, ["data.dataset=semantickitti", f"data.root={root}",
                                            "data.voxel_size=0.4"], 19, 1)
    out = tmp_path / "pred"
    predict_split(cfg, state, path, out, progress=False)
    pred_files = [sub.prediction_path(out, sid, "semantickitti") for sid in scans]
    gt_files = [root / "sequences" / sid.split("/")[0] / "labels" / f"{sid.split('/')[1]}.label" for sid in scans]
    for f, n in zip(pred_files, points):
        raw = np.fromfile(f, dtype=np.uint32)
        assert len(raw) == n and np.isin(raw, list(sub.LEARNING_MAP_INV.values())[1:]).all()
    ours = evaluate_predictions(cfg, out)
    miou, acc, iou = kitti_official(pred_files, gt_files)
    names = cfg_names(cfg)
    assert_scores_match(ours, iou[1:], names)
    assert abs(ours["miou"] - miou) < 1e-6 and abs(ours["acc"] - acc) < 1e-6
    # in memory: the same per-class IoU wherever a class occurs (pcseg's own mean skips absent classes, the
    # benchmark counts them as 0)
    memory = evaluate_checkpoint(cfg, state, str(path))
    for name in names:
        if not math.isnan(memory["iou"][name]):
            assert abs(memory["iou"][name] - ours["iou"][name]) < 1e-12
    present = [v for v in memory["iou"].values() if not math.isnan(v)]
    assert abs(memory["miou"] - np.mean(present)) < 1e-12
    return cfg, out, pred_files, gt_files


def test_semantickitti_round_trip_and_official_parity(tmp_path):
    root = tmp_path / "kitti"
    kitti_layout(root, KITTI_SCANS, 3000)
    cfg, out, pred_files, gt_files = check_kitti(tmp_path, root, KITTI_SCANS, [3000, 3000])
    # any raw ids, with instance bits, moving classes, ignored ids and an unknown one (the official lookup table
    # reaches 99 ids past the largest known id and fails beyond; pcseg counts any unknown id as ignored)
    rng = np.random.default_rng(3)
    choices = np.array(sorted(KITTI_MAP) + [300], dtype=np.uint32)
    for f in pred_files:
        (rng.choice(choices, 3000) | (rng.integers(0, 9, 3000).astype(np.uint32) << 16)).tofile(f)
    ours = evaluate_predictions(cfg, out)
    miou, acc, iou = kitti_official(pred_files, gt_files)
    assert_scores_match(ours, iou[1:], cfg_names(cfg))
    assert abs(ours["miou"] - miou) < 1e-6 and abs(ours["acc"] - acc) < 1e-6


def test_semantickitti_real_scan(tmp_path, shared_data):
    source = shared_data / "semantickitti" / "sequences" / "XX"
    root = tmp_path / "kitti"
    for folder, name in (("velodyne", "000000.bin"), ("labels", "000000.label")):
        (root / "sequences" / "08" / folder).mkdir(parents=True)
        shutil.copy(source / folder / name, root / "sequences" / "08" / folder / name)
    check_kitti(tmp_path, root, ["08/000000"], [123389])


# -------------------------------------------------------------------------------------------------- S3DIS
def test_s3dis_rooms_in_annotation_order(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "s3dis"
    rooms = {"office_1": {"wall_1": 300, "chair_2": 120, "chair_1": 200, "stairs_1": 40},
             "hallway_2": {"floor_1": 250, "door_1": 90}}
    for room, files in rooms.items():
        write_s3dis_room(root, "Area_5", room, files, rng)
    write_s3dis_room(root, "Area_1", "office_9", {"table_1": 50}, rng)
    cfg, state, path = setup_run(tmp_path, ["data.dataset=s3dis", f"data.root={root}", "data.voxel_size=0.1"],
                                 13, 3)
    out = tmp_path / "pred"
    predict_split(cfg, state, path, out, progress=False)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.npy")) == ["Area_5/hallway_2.npy",
                                                                            "Area_5/office_1.npy"]
    office = np.load(out / "Area_5" / "office_1.npy")
    assert office.shape == (660,) and office.dtype == np.int64 and office.max() < len(S3DIS_CLASSES)
    ours = evaluate_predictions(cfg, out)
    memory = evaluate_checkpoint(cfg, state, str(path))
    assert ours["miou"] == memory["miou"] and ours["points"] == memory["points"] == 1000
    np.testing.assert_equal(ours["iou"], memory["iou"])  # NaN for the classes absent from both
    assert ours["rule"] == "default" and ours["format"] == "classes"
