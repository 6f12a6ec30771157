import numpy as np
import pytest

from pcseg.data.semantickitti import (
    LEARNING_MAP,
    SEMANTICKITTI_CLASSES,
    SemanticKITTI,
    label_lookup,
    read_labels,
    read_learning_map,
    read_points,
    read_scan,
)


def _link_sequence(shared, tmp_path, seq="08"):
    """sequences/<seq>/{velodyne,labels}/000000.* as symlinks to the real sample scan."""
    src = shared / "semantickitti" / "sequences" / "XX"
    for sub, ext in (("velodyne", "bin"), ("labels", "label")):
        (tmp_path / "sequences" / seq / sub).mkdir(parents=True)
        (tmp_path / "sequences" / seq / sub / f"000000.{ext}").symlink_to(src / sub / f"000000.{ext}")
    return tmp_path


def test_builtin_map_equals_official_yaml(shared_data):
    learning_map, names = read_learning_map(shared_data / "meta" / "semantickitti" / "semantic-kitti.yaml")
    assert learning_map == LEARNING_MAP
    assert names == SEMANTICKITTI_CLASSES and len(names) == 19


def test_real_scan_every_raw_id_mapped(shared_data):
    base = shared_data / "semantickitti" / "sequences" / "XX"
    scene = read_scan(base / "velodyne" / "000000.bin", base / "labels" / "000000.label")
    assert scene.num_points == 123389
    assert scene.strength.shape == (123389, 1)
    raw = np.fromfile(base / "labels" / "000000.label", dtype=np.uint32) & 0xFFFF
    assert set(np.unique(raw).tolist()) <= set(LEARNING_MAP)
    assert {252, 254} <= set(np.unique(raw).tolist())  # moving classes present...
    moving_car = raw == 252
    assert (scene.label[moving_car] == SEMANTICKITTI_CLASSES.index("car")).all()  # ...and mapped
    moving_person = raw == 254
    assert (scene.label[moving_person] == SEMANTICKITTI_CLASSES.index("person")).all()
    ignored = np.isin(raw, [0, 1, 52, 99])
    assert (scene.label[ignored] == -1).all() and (scene.label[~ignored] >= 0).all()
    assert scene.label.max() < 19


def test_source_split_layout(shared_data, tmp_path):
    root = _link_sequence(shared_data, tmp_path, "08")
    val = SemanticKITTI(root, "val")
    assert val.scene_ids == ["08/000000"] and val.num_classes == 19
    assert val[0].num_points == 123389
    with pytest.raises(FileNotFoundError, match="sequences/00/velodyne"):
        SemanticKITTI(root, "train")
    (root / "sequences" / "08" / "labels" / "000000.label").unlink()
    with pytest.raises(FileNotFoundError, match="000000.label"):
        val[0]


def test_mmdet3d_fixture(shared_data):
    source = SemanticKITTI(shared_data / "mmdet3d_fixtures" / "semantickitti", "all")
    scene = source[0]
    assert source.scene_ids == ["00/000000"] and scene.num_points == 50
    assert scene.label.min() >= -1 and scene.label.max() < 19


def test_truncated_bin(tmp_path):
    path = tmp_path / "000000.bin"
    np.zeros((10, 4), np.float32).tofile(path)
    with open(path, "ab") as f:
        f.write(b"\0" * 6)
    with pytest.raises(ValueError, match=r"000000.bin: 166 bytes is not a multiple of 16"):
        read_points(path)


def test_label_count_mismatch_and_unknown_id(tmp_path):
    lut = label_lookup(LEARNING_MAP)
    path = tmp_path / "a.label"
    np.array([10, 40, 40], np.uint32).tofile(path)
    with pytest.raises(ValueError, match=r"a.label: 12 bytes = 3 labels, but the scan has 4 points"):
        read_labels(path, 4, lut)
    np.array([10, 41 | (7 << 16), 300], np.uint32).tofile(path)
    with pytest.raises(ValueError, match=r"a.label: raw ids \[41, 300\] are not in the learning map"):
        read_labels(path, 3, lut)
    np.array([10 | (3 << 16), 252, 0], np.uint32).tofile(path)
    label, instance = read_labels(path, 3, lut)
    assert label.tolist() == [0, 0, -1] and instance.tolist() == [3, -1, -1]


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin does not exist"):
        read_points(tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError, match="has no sequences/"):
        SemanticKITTI(tmp_path, "train")
