import numpy as np
import pytest

from pcseg.data import build_dataset
from pcseg.data.ondisk import Preprocessed, read_scene, scene_folder, write_scene
from pcseg.data.preprocess import preprocess
from pcseg.data.s3dis import S3DIS, DataWarning


def write_room(root, area, room, files):
    """Area_N/<room>/Annotations/<class>_<k>.txt, lines 'x y z r g b'."""
    folder = root / area / room / "Annotations"
    folder.mkdir(parents=True)
    for name, lines in files.items():
        (folder / name).write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    rng = np.random.default_rng(0)
    for area, room in (("Area_1", "office_1"), ("Area_1", "office_2"), ("Area_2", "hall_1"), ("Area_5", "wc_1")):
        lines = [" ".join(f"{v:.3f}" for v in rng.random(3)) + " 10 20 30" for _ in range(40)]
        write_room(root, area, room, {"chair_1.txt": lines, "floor_1.txt": lines[:10]})
    write_room(root, "Area_5", "hallway_6", {"ceiling_1.txt": ["0 0 3 1 2 3", "0 0 3 1 2\x10 3"]})
    write_room(root, "Area_2", "broken_1", {"sky_1.txt": ["0 0 0 0 0 0"]})
    return root


def test_preprocess_parallel_resume_and_report(raw, tmp_path):
    dst = tmp_path / "out"
    report = preprocess("s3dis", raw, dst, workers=2, progress=False)
    assert report.written == 5 and report.skipped == 0
    assert list(report.failures) == ["Area_2/broken_1"] and "unknown class 'sky'" in report.failures["Area_2/broken_1"]
    assert any("ceiling_1.txt:2: repaired" in p for p in report.problems)
    assert "1 failed" in report.summary()
    # converted scenes equal the raw ones
    with pytest.warns(DataWarning):
        original = S3DIS(raw, "val")[0]
    stored = read_scene(dst, "Area_5/hallway_6")
    assert np.array_equal(stored.coord, original.coord) and np.array_equal(stored.label, original.label)
    assert np.array_equal(stored.instance, original.instance)
    # resume: finished scenes are skipped, only the broken one is tried again
    again = preprocess("s3dis", raw, dst, workers=1, progress=False)
    assert again.written == 0 and again.skipped == 5 and list(again.failures) == ["Area_2/broken_1"]


def test_preprocessed_dataset(raw, tmp_path):
    dst = tmp_path / "out"
    preprocess("s3dis", raw, dst, workers=0, progress=False)
    source = Preprocessed(dst, "val")
    assert source.dataset == "s3dis" and source.num_classes == 13
    assert source.scene_ids == ["Area_5/hallway_6", "Area_5/wc_1"] and source.missing() == []
    train = Preprocessed(dst, "train")
    assert train.missing() == ["Area_2/broken_1"]
    with pytest.raises(FileNotFoundError, match="'Area_2/broken_1' not found"):
        train[train.scene_ids.index("Area_2/broken_1")]
    dataset = build_dataset("preprocessed", str(dst), "val")
    assert dataset.voxel_size == 0.05 and dataset.features == ("color",)  # the defaults of s3dis
    assert len(dataset[1].coord) == 50
    with pytest.raises(ValueError, match="no split 'test'"):
        Preprocessed(dst, "test")
    with pytest.raises(FileNotFoundError, match="not a preprocessed dataset"):
        Preprocessed(tmp_path, "train")


def test_atomic_scene_write_and_damage(tmp_path):
    from pcseg.data import generate_indoor_scene

    scene = generate_indoor_scene(0, 500, "a/b")
    folder = write_scene(scene, tmp_path)
    assert folder == scene_folder(tmp_path, "a/b") and not list(folder.parent.glob(".*tmp"))
    back = read_scene(tmp_path, "a/b")
    for name in ("coord", "color", "label", "normal", "instance"):
        assert np.array_equal(getattr(back, name), getattr(scene, name))
    (folder / "label.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="label.npy is damaged"):
        read_scene(tmp_path, "a/b")
    (folder / "color.npy").unlink()
    with pytest.raises(FileNotFoundError, match="color.npy is missing"):
        read_scene(tmp_path, "a/b")
    with pytest.raises(ValueError, match="cannot be used as a folder name"):
        scene_folder(tmp_path, "../x")
