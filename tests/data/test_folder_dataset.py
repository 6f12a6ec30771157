"""The folder dataset: every format read as the YAML says, per-file validation, unlabeled scenes, YAML errors."""
import numpy as np
import pytest
from folder_helpers import (COLUMNS, add_bad_files, mixed_folder, room, table, write_npy, write_ply, write_spec,
                            write_txt)

from pcseg.data import DATASETS, build_dataset, build_source
from pcseg.data.folder import (FolderDataset, FolderFileError, FolderSpecError, read_scene_file, read_spec,
                               validate_folder)


def assert_same(scene, expected, colour=True):
    np.testing.assert_allclose(scene.coord, expected.coord, atol=2e-6)
    np.testing.assert_array_equal(scene.label, expected.label)
    if colour:
        np.testing.assert_allclose(scene.color, expected.color, atol=1e-6)


def test_every_format_reads_back_the_scene(tmp_path):
    scenes = mixed_folder(tmp_path)
    train = build_source("folder", str(tmp_path), "train")
    assert "folder" in DATASETS
    assert train.scene_ids == ["train/a", "train/b", "train/c", "train/d"]
    assert train.class_names[0] == "floor" and train.num_classes == 11
    for i, scene_id in enumerate(train.scene_ids):
        scene = train[i]
        assert scene.scene_id == scene_id and scene.coord.dtype == np.float32 and scene.label.dtype == np.int64
        assert_same(scene, scenes[scene_id])
    assert build_source("folder", str(tmp_path), "val").scene_ids == ["val/e"]
    assert len(build_source("folder", str(tmp_path), "all")) == 5
    with pytest.raises(ValueError, match="no split 'test'; pcseg_dataset.yaml has train, val, all"):
        build_source("folder", str(tmp_path), "test")
    dataset = build_dataset("folder", str(tmp_path), "val")  # the "folder" defaults: colour features
    assert dataset.features == ("color",) and dataset.in_channels == 3 and len(dataset[0].feat) > 0


def test_validation_names_each_bad_file_with_its_reason(tmp_path):
    mixed_folder(tmp_path)
    expected = add_bad_files(tmp_path)
    report = validate_folder(tmp_path)
    assert sorted(str(f.path.relative_to(tmp_path)) for f in report.bad) == sorted(expected)
    for check in report.bad:
        assert expected[str(check.path.relative_to(tmp_path))] in "; ".join(check.problems)
    assert sorted(f.scene_id for f in report.good) == ["train/a", "train/b", "train/c", "train/d", "val/e"]
    text = report.summary()
    assert text.startswith("checked 9 files: 5 good (5 labeled, 0 unlabeled, 10,000 points), 4 bad")
    assert all(f"BAD {tmp_path / name}: " in text for name in expected)
    # reading a bad scene through the source raises an error naming the file
    source = FolderDataset(tmp_path, "train")
    with pytest.raises(FolderFileError, match=r"nan_coords\.npy: 2 of 500 points with NaN"):
        source[source.scene_ids.index("train/nan_coords")]


def test_more_problems_of_one_file_are_all_reported(tmp_path):
    mixed_folder(tmp_path)
    values = table(room(7, 300))
    values[0, 0] = np.inf
    values[1, 3] = 300  # colour above color_max 255
    values[2, 6] = 2.5  # not an integer label
    np.save(tmp_path / "train/many.npy", values)
    np.save(tmp_path / "train/empty.npy", np.zeros((0, 7)))
    spec = read_spec(tmp_path / "pcseg_dataset.yaml")
    with pytest.raises(FolderFileError) as info:
        read_scene_file(tmp_path / "train/many.npy", spec, "train/many")
    assert info.value.problems == ["1 of 300 points with NaN or infinite coordinates (first: point 0)",
                                   "colour values reach 300, above color_max 255: set color_max to the range of "
                                   "the data",
                                   "1 label values are not integers (e.g. 2.5)"]
    with pytest.raises(FolderFileError, match="empty: no points"):
        read_scene_file(tmp_path / "train/empty.npy", spec, "train/empty")


def test_unlabeled_scenes(tmp_path):
    scene = room(3, 800)
    write_txt(tmp_path / "scans/a.txt", scene, label=False)  # 6 columns: no label column
    write_ply(tmp_path / "scans/b.ply", scene, label=False)
    write_npy(tmp_path / "labeled/c.npy", scene)
    write_ply(tmp_path / "labeled/d.ply", scene, label=False)  # claims labels, has none
    write_spec(tmp_path, splits={"train": ["labeled"], "raw": ["scans/*"]}, unlabeled=["scans"])
    raw = FolderDataset(tmp_path, "raw")
    for i in range(2):
        assert_same(raw[i], scene.replace(label=np.full(scene.num_points, -1)))
    report = validate_folder(tmp_path)
    assert [f.scene_id for f in report.bad] == ["labeled/d"]
    assert ("missing field 'label' (label) (list the scene under `unlabeled:` in pcseg_dataset.yaml if it has no "
            "labels); the file has: x, y, z, red, green, blue") in report.bad[0].problems[0]
    assert "3 good (1 labeled, 2 unlabeled" in report.summary()
    # without a label field every scene is unlabeled
    for name in ("labeled/c.npy", "labeled/d.ply"):
        (tmp_path / name).unlink()
    write_spec(tmp_path, fields={"color": ["red", "green", "blue"]}, columns=COLUMNS[:6], splits=None,
               label_map=None)
    source = FolderDataset(tmp_path, "train")
    assert len(source) == 2 and all((source[i].label == -1).all() for i in range(2))


def test_fields_by_column_index_intensity_and_no_label_map(tmp_path):
    scene = room(4, 600)
    intensity = np.linspace(0, 4000, scene.num_points)
    np.savez(tmp_path / "s.npz", coord=scene.coord, rgb=np.round(scene.color * 255), i=intensity,
             cls=scene.label)
    write_spec(tmp_path, columns=None, label_map=None, ignore=None, splits=None, color_max=255,
               intensity_max=4000, kind="outdoor",
               fields={"x": "coord[0]", "y": "coord[1]", "z": "coord[2]", "color": ["rgb[0]", "rgb[1]", "rgb[2]"],
                       "intensity": "i", "label": "cls"})
    source = FolderDataset(tmp_path)
    got = source[0]
    assert_same(got, scene)
    np.testing.assert_allclose(got.strength[:, 0], intensity / 4000, rtol=1e-6)
    assert source.defaults == {"features": ("color", "strength"), "kind": "outdoor"}
    assert build_dataset("folder", str(tmp_path)).in_channels == 4


def test_far_coordinates_are_shifted_to_keep_float32_precision(tmp_path):
    scene = room(2, 400)
    values = table(scene)
    values[:, :3] += [500000.25, 5200000.5, 300.0]  # UTM-like
    np.save(tmp_path / "utm.npy", values)
    write_spec(tmp_path, splits=None)
    got = FolderDataset(tmp_path)[0]
    offset = got.extras["offset"]
    np.testing.assert_array_equal(offset, np.floor(values[:, :3].min(0)))
    np.testing.assert_allclose(got.coord + offset, values[:, :3], atol=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"clases": ["a"]}, "unknown key 'clases' (did you mean 'classes'?)"),
    ({"color_max": None}, "say the colour range with color_max"),
    ({"label_map": {1: "sofa_bed"}}, "label_map: 1 -> 'sofa_bed' is neither a class name"),
    ({"splits": {"train": ["nowhere/*"]}}, "splits.train: 'nowhere/*' matches no scene file"),
    ({"fields": {"colour": ["r", "g", "b"]}}, "fields: unknown attribute 'colour'"),
    ({"features": ["strength"]}, "features: 'strength' needs fields.intensity"),
])
def test_yaml_errors_name_the_key(tmp_path, changes, message):
    mixed_folder(tmp_path, points=300)
    write_spec(tmp_path, **changes)
    with pytest.raises(FolderSpecError) as info:
        FolderDataset(tmp_path, "train")
    assert message in str(info.value) and "pcseg_dataset.yaml" in str(info.value)


def test_two_files_of_one_scene_and_a_missing_yaml(tmp_path):
    scene = room(1, 300)
    write_ply(tmp_path / "a.ply", scene)
    with pytest.raises(FileNotFoundError, match="dataset YAML .*pcseg_dataset.yaml does not exist"):
        FolderDataset(tmp_path)
    write_spec(tmp_path, splits=None)
    write_npy(tmp_path / "a.npy", scene)
    with pytest.raises(ValueError, match=r"two files hold scene 'a': .*a\.npy and .*a\.ply"):
        FolderDataset(tmp_path)


def test_las_and_laz(tmp_path):
    laspy = pytest.importorskip("laspy", reason="the `las` extra")
    scene = room(6, 700)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales, header.offsets = [0.001] * 3, [0.0] * 3
    las = laspy.LasData(header)
    las.x, las.y, las.z = (scene.coord[:, i].astype(np.float64) for i in range(3))
    las.red, las.green, las.blue = (np.round(scene.color[:, i] * 65535).astype(np.uint16) for i in range(3))
    las.intensity = np.arange(scene.num_points, dtype=np.uint16)
    las.classification = np.where(scene.label >= 0, scene.label + 1, 0).astype(np.uint8)
    las.write(str(tmp_path / "scan.las"))
    formats = ["las"]
    try:
        las.write(str(tmp_path / "scan_z.laz"))
        formats.append("laz")
    except laspy.errors.LaspyException:  # no LAZ backend (lazrs) installed
        (tmp_path / "scan_z.laz").unlink(missing_ok=True)
    write_spec(tmp_path, splits=None, columns=None, color_max=65535, intensity_max=65535,
               fields={"color": ["red", "green", "blue"], "intensity": "intensity", "label": "classification"})
    source = FolderDataset(tmp_path)
    assert len(source) == len(formats)
    for i in range(len(source)):
        got = source[i]
        np.testing.assert_allclose(got.coord, scene.coord, atol=6e-4)  # the 1 mm LAS scale
        np.testing.assert_array_equal(got.label, scene.label)
        np.testing.assert_allclose(got.color, scene.color, atol=1e-4)
        np.testing.assert_allclose(got.strength[:, 0], np.arange(scene.num_points) / 65535, rtol=1e-6)


def test_las_without_laspy_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_laspy(name, *args, **kwargs):
        if name == "laspy":
            raise ImportError("No module named 'laspy'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "scan.las").write_bytes(b"LASF")
    write_spec(tmp_path, splits=None, columns=None, fields={})
    monkeypatch.setattr(builtins, "__import__", no_laspy)
    with pytest.raises(ImportError, match=r"needs laspy, the optional extra: pip install 'pcseg\[las\]'"):
        FolderDataset(tmp_path)[0]


def test_non_numeric_field_and_cloudcompare_header(tmp_path):
    scene = room(8, 300)
    values = table(scene)
    arrays = {name: values[:, i] for i, name in enumerate(COLUMNS)}
    np.savez(tmp_path / "words.npz", **{**arrays, "red": np.array(["r"] * scene.num_points)})
    with open(tmp_path / "cc.txt", "w") as handle:
        handle.write("//X Y Z R G B label\n")
        np.savetxt(handle, values, fmt="%.6f")
    write_spec(tmp_path, splits=None)
    source = FolderDataset(tmp_path)
    assert_same(source[0], scene)
    with pytest.raises(FolderFileError, match=r"words\.npz: field 'red' \(color\) is not numeric \(<U1\)"):
        source[1]


def test_the_module_docstring_example_is_a_valid_yaml(tmp_path):
    import pcseg.data.folder as folder

    doc = folder.__doc__
    start = doc.index("```yaml\n") + len("```yaml\n")
    (tmp_path / "example.yaml").write_text(doc[start:doc.index("```", start)])
    spec = read_spec(tmp_path / "example.yaml")
    assert spec.label_lut == {1: 0, 2: 1, 5: 2, 7: 3, 0: -1} and spec.color_max == 255
    assert spec.fields["color"] == ("red", "green", "blue") and spec.unlabeled == ("scans_new",)
