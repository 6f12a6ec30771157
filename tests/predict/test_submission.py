"""Benchmark submission files and scoring rules: literal cases."""
import math

import numpy as np
import pytest

from pcseg.data import submission as sub


def test_scannet_txt_holds_nyu40_ids_one_per_line(tmp_path):
    path = sub.write_prediction(tmp_path, "scene0011_00", np.array([0, 1, 12, 19, 13]), "scannet", 20)
    assert path == tmp_path / "scene0011_00.txt"
    assert path.read_text() == "1\n2\n14\n39\n16\n"
    assert sub.read_prediction(path, "scannet", 20).tolist() == [0, 1, 12, 19, 13]
    # ids outside the 20 benchmark classes read as "other" (index K)
    path.write_text("13\n0\n40\n5\r\n")
    assert sub.read_prediction(path, "scannet", 20).tolist() == [20, 20, 20, 4]


@pytest.mark.parametrize("text, message", [("1\nchair\n", "line 2: b'chair' is not a nyu40 id"),
                                           ("1\n\n2\n", "line 2: b'' is not a nyu40 id"),
                                           ("1\n41\n", "ids must be nyu40 ids 0-40, got 1..41")])
def test_scannet_txt_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "scene0000_00.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        sub.read_prediction(path, "scannet", 20)
    assert str(path) in str(error.value)


def test_semantickitti_label_holds_raw_ids_in_scan_order(tmp_path):
    path = sub.write_prediction(tmp_path, "08/000123", np.array([0, 8, 18, 5]), "semantickitti", 19)
    assert path == tmp_path / "sequences" / "08" / "predictions" / "000123.label"
    assert np.fromfile(path, dtype=np.uint32).tolist() == [10, 40, 81, 30]
    # low 16 bits only; moving classes map onto their static class; ignored or unknown ids are "other"
    raw = np.array([10 | (3 << 16), 252, 0, 52, 300, 81], dtype=np.uint32)
    raw.tofile(path)
    assert sub.read_prediction(path, "semantickitti", 19).tolist() == [0, 0, 19, 19, 19, 18]
    path.write_bytes(b"\x00" * 6)
    with pytest.raises(ValueError, match="6 bytes is not a whole number of uint32 labels"):
        sub.read_prediction(path, "semantickitti", 19)


def test_every_semantickitti_class_round_trips_through_the_maps(tmp_path):
    pred = np.arange(19)
    path = sub.write_prediction(tmp_path, "08/000000", pred, "semantickitti", 19)
    assert sub.read_prediction(path, "semantickitti", 19).tolist() == pred.tolist()


def test_learning_map_inv_is_the_official_one(shared_data):
    import yaml

    official = yaml.safe_load((shared_data / "meta" / "semantickitti" / "semantic-kitti.yaml").read_text())
    assert {int(k): int(v) for k, v in official["learning_map_inv"].items()} == sub.LEARNING_MAP_INV


def test_class_index_npy_round_trip_and_range(tmp_path):
    path = sub.write_prediction(tmp_path, "Area_5/office_1", np.array([0, 12, 3]), "classes", 13)
    assert path == tmp_path / "Area_5" / "office_1.npy"
    assert np.load(path).dtype == np.int64
    assert sub.read_prediction(path, "classes", 13).tolist() == [0, 12, 3]
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 12\), got 0..12"):
        sub.read_prediction(path, "classes", 12)
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 13\)"):
        sub.write_prediction(tmp_path, "x", np.array([13]), "classes", 13)


def test_probabilities_file(tmp_path):
    prob = np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32)
    path = sub.write_probs(tmp_path, "08/000001", prob)
    assert path == tmp_path / "probs" / "08" / "000001.npy" and np.load(path).dtype == np.float16
    assert np.array_equal(sub.read_probs(tmp_path, "08/000001"), prob)


def test_paths_reject_ids_that_leave_the_folder(tmp_path):
    for bad in ("../x", "/abs", "a/../b"):
        with pytest.raises(ValueError, match="cannot be used as a file name"):
            sub.prediction_path(tmp_path, bad, "classes")
    with pytest.raises(ValueError, match="is not 'NN/XXXXXX'"):
        sub.prediction_path(tmp_path, "000001", "semantickitti")
    with pytest.raises(ValueError, match="unknown prediction format"):
        sub.prediction_path(tmp_path, "x", "ply")


def test_remove_partial_deletes_what_a_crashed_write_left(tmp_path):
    sub.write_prediction(tmp_path, "a/scene", np.array([0, 1]), "classes", 2)
    (tmp_path / "a" / ".scene.npy.abc.tmp").write_bytes(b"left by a crash")
    assert sub.remove_partial(tmp_path) == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["scene.npy"]


def test_confusion_counts_other_predictions_in_the_last_column():
    pred = np.array([0, 0, 2, 1, 1, 0])
    label = np.array([0, 0, 0, 1, -1, 1])
    assert sub.benchmark_confusion(pred, label, 2).tolist() == [[2, 0, 1], [1, 1, 0]]


def test_scores_literal():
    # class 0: TP 3, 1 predicted as class 1 and 1 as "other"; class 1: TP 2; no prediction of class 0 elsewhere
    conf = np.array([[3, 1, 1], [0, 2, 0]])
    for rule in ("scannet", "default", "semantickitti"):
        scores = sub.score_confusion(conf, rule, ["a", "b"])
        assert scores["iou"] == pytest.approx({"a": 3 / 5, "b": 2 / 3}, abs=1e-12)
        assert scores["miou"] == pytest.approx((3 / 5 + 2 / 3) / 2, abs=1e-12) and scores["points"] == 7
    assert sub.score_confusion(conf, "scannet")["acc"] == pytest.approx(5 / 7)
    assert sub.score_confusion(conf, "semantickitti")["acc"] == pytest.approx(5 / 6)  # "other" not counted


def test_absent_classes_scannet_skips_semantickitti_counts_zero():
    conf = np.array([[4, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]])
    scannet = sub.score_confusion(conf, "scannet")
    assert math.isnan(scannet["iou"]["1"]) and scannet["miou"] == pytest.approx((1 + 0.5) / 2)
    kitti = sub.score_confusion(conf, "semantickitti")
    assert kitti["iou"]["1"] == 0.0 and kitti["miou"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_rule_and_format_of_datasets():
    assert [sub.benchmark_of(d) for d in ("scannet", "semantickitti", "s3dis", "synthetic_indoor")] == \
        ["scannet", "semantickitti", "classes", "classes"]
    assert [sub.rule_of(f) for f in sub.FORMATS] == ["scannet", "semantickitti", "default"]
    with pytest.raises(ValueError, match="unknown scoring rule"):
        sub.score_confusion(np.zeros((1, 2)), "cityscapes")
