import warnings

import numpy as np
import pytest

from pcseg.data.s3dis import S3DIS, S3DIS_CLASSES, DataWarning, read_annotation_file, read_s3dis_room


def write_room(root, area, room, files):
    """Area_N/<room>/Annotations/<class>_<k>.txt with 'x y z r g b' lines (the raw release layout)."""
    folder = root / area / room / "Annotations"
    folder.mkdir(parents=True)
    (root / area / room / f"{room}.txt").write_text("0 0 0 0 0 0\n")  # the whole-room file, not read
    for name, lines in files.items():
        (folder / name).write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def release(tmp_path):
    write_room(tmp_path, "Area_1", "office_1", {
        "chair_1.txt": ["1.000 2.000 0.500 255 0 0", "1.100 2.000 0.500 250 0 0"],
        "stairs_1.txt": ["3.0 3.0 0.1 10 20 30"],
    })
    write_room(tmp_path, "Area_5", "hallway_6", {
        # a stray control character inside a number, as in the raw Area_5/hallway_6 ceiling_1
        "ceiling_1.txt": ["0.5 0.5 3.0 200 200 200", "0.6 0.5 3.0 200 20\x100 200", "0.7 0.5 3.0 200 200 200"],
        # a corrupt number that no repair can save: the line is skipped
        "wall_1.txt": ["0 0 0 1 2 3", "0 1.2.3 0 1 2 3", "0 0 1 1 2 3"],
    })
    return tmp_path


def test_room_labels_instances_colors(release):
    scene = read_s3dis_room(release / "Area_1" / "office_1")
    assert scene.scene_id == "Area_1/office_1"
    chair, clutter = S3DIS_CLASSES.index("chair"), S3DIS_CLASSES.index("clutter")
    assert scene.label.tolist() == [chair, chair, clutter]  # stairs -> clutter
    assert scene.instance.tolist() == [0, 0, 1]
    assert np.allclose(scene.coord[0], [1, 2, 0.5]) and np.allclose(scene.color[0], [1, 0, 0])
    assert "problems" not in scene.extras


def test_damaged_lines_are_reported_repaired_or_skipped(release):
    with pytest.warns(DataWarning) as record:
        scene = read_s3dis_room(release / "Area_5" / "hallway_6")
    messages = [str(w.message) for w in record]
    assert any("ceiling_1.txt:2: repaired" in m for m in messages)
    assert any("wall_1.txt:2: skipped" in m for m in messages)
    assert scene.extras["problems"] and len(scene.extras["problems"]) == 2
    assert scene.num_points == 5  # 3 ceiling (one repaired) + 2 wall (one skipped)
    assert np.allclose(scene.color[1] * 255, [200, 200, 200])


def test_clean_file_fast_path_has_no_warnings(release):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points, problems = read_annotation_file(release / "Area_1/office_1/Annotations/chair_1.txt")
    assert points.shape == (2, 6) and problems == []


def test_splits_and_errors(release, tmp_path):
    assert S3DIS(release, "train").scene_ids == ["Area_1/office_1"]
    assert S3DIS(release, "test").scene_ids == ["Area_5/hallway_6"]
    assert S3DIS(release, "train", test_area=1).scene_ids == ["Area_5/hallway_6"]
    write_room(release, "Area_2", "lobby_1", {"pillar_1.txt": ["0 0 0 0 0 0"]})
    with pytest.raises(ValueError, match="pillar_1.txt: unknown class 'pillar'"):
        S3DIS(release, "train")[1]
    write_room(release, "Area_3", "wc_1", {"door_1.txt": ["nonsense"]})
    with pytest.warns(DataWarning), pytest.raises(ValueError, match="door_1.txt has no readable"):
        read_s3dis_room(release / "Area_3" / "wc_1")
    with pytest.raises(FileNotFoundError, match="no Area_N folders"):
        S3DIS(tmp_path / "Area_1")


def test_official_class_order(shared_data):
    names = (shared_data / "meta" / "s3dis" / "class_names.txt").read_text().split()
    assert tuple(names) == S3DIS_CLASSES


def test_anno_paths_layout(shared_data):
    paths = (shared_data / "meta" / "s3dis" / "anno_paths.txt").read_text().split()
    assert len(paths) == 272
    assert all(p.startswith("Area_") and p.endswith("/Annotations") for p in paths)
    assert sum(p.startswith("Area_5/") for p in paths) == 68


def test_mmdet3d_fixture_mask(shared_data):
    base = shared_data / "mmdet3d_fixtures" / "s3dis"
    points = np.fromfile(base / "points" / "Area_1_office_2.bin", np.float32).reshape(-1, 6)
    mask = np.fromfile(base / "semantic_mask" / "Area_1_office_2.bin", np.int64)
    assert len(points) == len(mask) == 100
    assert mask.min() >= 0 and mask.max() < len(S3DIS_CLASSES)
