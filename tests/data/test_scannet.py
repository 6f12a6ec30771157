import json

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from pcseg.data.scannet import (
    SCANNET_CLASSES,
    VALID_CLASS_IDS,
    ScanNet,
    nyu40_to_class,
    read_label_tsv,
    read_ply,
    read_scannet_scene,
)

# a unit square (two triangles) plus a separate triangle: 7 vertices
COORD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [0, 0, 2]], np.float32)
FACES = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
NYU40 = np.array([2, 2, 2, 2, 5, 5, 13], np.uint16)  # floor, chair, 13 (pillow) is not a benchmark class
SEGS = [0, 0, 0, 0, 7, 7, 9]


def _vertex(extra=()):
    dtype = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
             ("alpha", "u1"), *extra]
    v = np.zeros(len(COORD), dtype=dtype)
    v["x"], v["y"], v["z"] = COORD.T
    v["red"], v["green"], v["blue"], v["alpha"] = 255, np.arange(7) * 10, 0, 255
    return v


def _faces():
    f = np.zeros(len(FACES), dtype=[("vertex_indices", "i4", (3,))])
    f["vertex_indices"] = FACES
    return PlyElement.describe(f, "face", len_types={"vertex_indices": "u1"}, val_types={"vertex_indices": "i4"})


def write_scene(folder, scene_id, labels=True, annotations=True):
    """The official per-scene files of a ScanNet v2 scan."""
    folder.mkdir(parents=True)
    PlyData([PlyElement.describe(_vertex(), "vertex"), _faces()], byte_order="<").write(
        str(folder / f"{scene_id}_vh_clean_2.ply"))
    if labels:
        v = _vertex([("label", "u2")])
        v["label"] = NYU40
        PlyData([PlyElement.describe(v, "vertex"), _faces()], byte_order="<").write(
            str(folder / f"{scene_id}_vh_clean_2.labels.ply"))
    if annotations:
        (folder / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(
            json.dumps({"sceneId": scene_id, "segIndices": SEGS}))
        groups = [{"id": 0, "objectId": 0, "segments": [0], "label": "floor"},
                  {"id": 1, "objectId": 1, "segments": [7], "label": "chair"}]
        (folder / f"{scene_id}.aggregation.json").write_text(json.dumps({"sceneId": scene_id, "segGroups": groups}))


@pytest.fixture
def release(tmp_path):
    write_scene(tmp_path / "scans" / "scene0000_00", "scene0000_00")
    write_scene(tmp_path / "scans" / "scene0001_00", "scene0001_00")
    write_scene(tmp_path / "scans_test" / "scene0707_00", "scene0707_00", labels=False, annotations=False)
    (tmp_path / "scannetv2_train.txt").write_text("scene0000_00\r\n")
    (tmp_path / "scannetv2_val.txt").write_text("scene0001_00\n")
    (tmp_path / "scannetv2_test.txt").write_text("scene0707_00\n")
    return tmp_path


def test_written_ply_has_the_official_layout(release):
    header = (release / "scans/scene0000_00/scene0000_00_vh_clean_2.ply").read_bytes().split(b"end_header")[0]
    for line in (b"format binary_little_endian 1.0", b"property float x", b"property uchar red",
                 b"property uchar alpha", b"property list uchar int vertex_indices"):
        assert line in header


def test_read_scene_labels_instances_normals(release):
    scene = read_scannet_scene(release / "scans" / "scene0000_00", normals=True)
    assert scene.scene_id == "scene0000_00"
    assert np.array_equal(scene.coord, COORD)
    assert np.allclose(scene.color[:, 1], np.arange(7) * 10 / 255)
    floor, chair = SCANNET_CLASSES.index("floor"), SCANNET_CLASSES.index("chair")
    assert scene.label.tolist() == [floor] * 4 + [chair] * 2 + [-1]
    assert scene.instance.tolist() == [0, 0, 0, 0, 1, 1, -1]
    assert np.allclose(scene.normal[:4], [0, 0, 1])
    assert np.allclose(np.abs(scene.normal[4:, 0]), 1)


def test_splits(release):
    assert ScanNet(release, "train").scene_ids == ["scene0000_00"]
    val = ScanNet(release, "val")
    assert val.scene_ids == ["scene0001_00"] and val[0].num_points == 7
    test = ScanNet(release, "test")
    assert (test[0].label == -1).all() and test[0].instance is None
    assert ScanNet(release, "all").scene_ids == ["scene0000_00", "scene0001_00"]
    with pytest.raises(FileNotFoundError, match="scannetv2_train.txt"):
        ScanNet(release / "scans", "train")


def test_labels_from_aggregation_through_tsv(release, tmp_path):
    (release / "scans/scene0000_00/scene0000_00_vh_clean_2.labels.ply").unlink()
    tsv = tmp_path / "labels.tsv"
    tsv.write_bytes(b"id\traw_category\tcategory\tcount\tnyu40id\r\r\n1\tfloor\tfloor\t9\t2\r\r\n"
                    b"2\tchair\tchair\t9\t5\r\r\n")
    scene = read_scannet_scene(release / "scans" / "scene0000_00", label_tsv=tsv)
    assert scene.label.tolist() == [1, 1, 1, 1, 4, 4, -1]
    with pytest.raises(FileNotFoundError, match="scene0000_00_vh_clean_2.labels.ply does not exist"):
        ScanNet(release, "train")[0]


def test_official_tsv_files(shared_data):
    meta = shared_data / "meta" / "scannet"
    updated = read_label_tsv(meta / "scannetv2-labels.combined.tsv")  # \r\r\n line ends
    original = read_label_tsv(meta / "scannetv2-labels.combined.v2-original.tsv")  # CRLF
    assert updated["chair"] == original["chair"] == 5 and updated["wall"] == 1
    assert len(original) == 607
    covered = nyu40_to_class(np.array(list(original.values())))
    assert set(covered[covered >= 0].tolist()) == set(range(20))


def test_benchmark_classes_match_official_list(shared_data):
    rows = [line.split(None, 1) for line in
            (shared_data / "meta/scannet/classes_SemVoxLabel-nyu40id.txt").read_text().splitlines() if line]
    assert tuple(int(r[0]) for r in rows) == VALID_CLASS_IDS
    names = tuple(r[1].strip().replace("refridgerator", "refrigerator") for r in rows)
    assert names == SCANNET_CLASSES


def test_mmdet3d_fixture_nyu40_mask(shared_data):
    base = shared_data / "mmdet3d_fixtures" / "scannet"
    points = np.fromfile(base / "points" / "scene0000_00.bin", np.float32).reshape(-1, 6)
    nyu40 = np.fromfile(base / "semantic_mask" / "scene0000_00.bin", np.int64)
    assert points.shape == (100, 6) and nyu40.shape == (100,)
    label = nyu40_to_class(nyu40)
    assert ((label >= -1) & (label < 20)).all() and (label >= 0).any()
    assert ((nyu40 == 1) == (label == 0)).all()  # nyu40 wall -> benchmark wall


def test_corrupt_and_missing_files(release):
    path = release / "scans/scene0000_00/scene0000_00_vh_clean_2.ply"
    data = path.read_bytes()
    path.write_bytes(data.replace(b"element vertex 7", b"element vertex x7"))
    with pytest.raises(ValueError, match="scene0000_00_vh_clean_2.ply: corrupt header"):
        read_ply(path, ("x",))
    path.write_bytes(data[:-20])  # body cut short
    with pytest.raises(ValueError, match="scene0000_00_vh_clean_2.ply: cannot read"):
        read_ply(path, ("x",))
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"vertex properties \['nx'\] missing"):
        read_ply(path, ("x", "nx"))
    with pytest.raises(FileNotFoundError, match="scene0002_00 does not exist"):
        ScanNet(release, "train").scene_dir("scene0002_00")
    segs = release / "scans/scene0001_00/scene0001_00_vh_clean_2.0.010000.segs.json"
    segs.write_text(json.dumps({"segIndices": [0, 0]}))
    with pytest.raises(ValueError, match="2 segment indices but the mesh has 7 vertices"):
        ScanNet(release, "val")[0]
