"""PLY export: binary layout, exact read-back with plyfile, our reader, Open3D, atomic writes."""
import numpy as np
import pytest
from plyfile import PlyData

from pcseg.vis import export_ply, export_scene_ply, get_palette, read_ply


def _arrays(n=500, seed=0):
    rng = np.random.default_rng(seed)
    coord = rng.normal(size=(n, 3)).astype(np.float32) * 10
    color = rng.uniform(size=(n, 3)).astype(np.float32)
    label = rng.integers(-1, 20, n)
    pred = rng.integers(0, 20, n)
    uncertainty = rng.uniform(size=n).astype(np.float32)
    return coord, color, label, pred, uncertainty


def test_export_reads_back_with_plyfile(tmp_path):
    coord, color, label, pred, uncertainty = _arrays()
    path = export_ply(tmp_path / "sub" / "scene.ply", coord, color, label=label, pred=pred, uncertainty=uncertainty,
                      meta={"scene_id": "scene0000_00"})
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    ply = PlyData.read(str(path))
    v = ply["vertex"].data
    assert [p.name for p in ply["vertex"].properties] == ["x", "y", "z", "red", "green", "blue", "label", "pred",
                                                           "uncertainty"]
    assert (v["x"].dtype, v["red"].dtype, v["label"].dtype, v["uncertainty"].dtype) == \
        (np.dtype("<f4"), np.dtype("u1"), np.dtype("<i4"), np.dtype("<f4"))
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), coord)
    np.testing.assert_array_equal(v["label"], label)
    np.testing.assert_array_equal(v["pred"], pred)
    np.testing.assert_array_equal(v["uncertainty"], uncertainty)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), np.round(color * 255))
    assert "pcseg scene_id=scene0000_00" in ply.comments
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["scene.ply"]  # no temp file left behind


def test_scene_export_round_trip(tmp_path, room):
    scene, pred, wrong = room
    uncertainty = wrong.astype(np.float32)
    path = export_scene_ply(tmp_path / "room.ply", scene, pred=pred, uncertainty=uncertainty, dataset="scannet")
    arrays, meta = read_ply(path)
    np.testing.assert_array_equal(arrays["coord"], scene.coord)
    np.testing.assert_array_equal(arrays["label"], scene.label)
    np.testing.assert_array_equal(arrays["pred"], pred)
    np.testing.assert_array_equal(arrays["uncertainty"], uncertainty)
    assert meta["rgb"] == "pred" and meta["scene_id"] == "test_room" and meta["dataset"] == "scannet"
    assert meta["classes"].split(",") == list(get_palette("scannet").class_names)
    expected = get_palette("scannet").colorize(pred)  # the colours show the prediction
    np.testing.assert_allclose(arrays["rgb"], expected, atol=0.5 / 255)


def test_open3d_reads_the_file(tmp_path):
    o3d = pytest.importorskip("open3d", reason="Open3D not installed")
    coord, color, label, pred, _ = _arrays()
    path = export_ply(tmp_path / "o3d.ply", coord, color, label=label, pred=pred)
    cloud = o3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(cloud.points), coord, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cloud.colors), np.round(color * 255) / 255, atol=1e-6)


def test_export_errors_and_overwrite(tmp_path):
    coord, color, label, pred, _ = _arrays(10)
    with pytest.raises(ValueError, match="pred must have 10 entries"):
        export_ply(tmp_path / "x.ply", coord, color, pred=pred[:5])
    with pytest.raises(ValueError, match="coord must be"):
        export_ply(tmp_path / "x.ply", coord[:, :2])
    with pytest.raises(ValueError, match="one line"):
        export_ply(tmp_path / "x.ply", coord, meta={"scene": "a\nb"})
    assert not any(tmp_path.iterdir())
    path = export_ply(tmp_path / "x.ply", coord, color, label=label)
    export_ply(path, coord[:4])  # replaces the file in one step
    arrays, _ = read_ply(path)
    assert len(arrays["coord"]) == 4 and "label" not in arrays
    np.testing.assert_allclose(arrays["rgb"], 128 / 255)  # no colour given: grey
    with pytest.raises(FileNotFoundError):
        read_ply(tmp_path / "missing.ply")
