import numpy as np
import pytest

from pcseg.data.camera import (
    Camera,
    kitti_camera,
    project_points,
    read_kitti_calib,
    read_kitti_object,
    read_nuscenes_infos,
    read_nuscenes_sample,
)


def test_project_points_literal():
    K = np.array([[10.0, 0, 5], [0, 10, 4], [0, 0, 1]])
    coord = np.array([[0, 0, 2.0], [1, 0, 2.0], [0.0, 0, -2], [1.0, 0.8, 2.0]])
    uv, depth, inside = project_points(coord, K, np.eye(4), 10, 8)
    assert np.allclose(uv[:2], [[5, 4], [10, 4]])
    assert depth.tolist() == [2, 2, -2, 2]
    assert inside.tolist() == [True, False, False, False]  # u == width is out; behind; v == 8 out


def test_kitti_object_real_frame(shared_data):
    root = shared_data / "kitti" / "object"
    scene = read_kitti_object(root, "000000")
    (camera,) = scene.extras["cameras"]
    assert scene.num_points == 115384 and camera.image.shape == (370, 1224, 3)
    _, depth, inside = camera.project(scene.coord)
    assert inside.sum() == 20285
    # the same count from the raw matrices P2 * R0_rect * Tr_velo_to_cam
    calib = read_kitti_calib(root / "training" / "calib" / "000000.txt")
    rect, velo = np.eye(4), np.eye(4)
    rect[:3, :3], velo[:3] = calib["R0_rect"], calib["Tr_velo_to_cam"]
    h = np.c_[scene.coord, np.ones(len(scene.coord))] @ (calib["P2"] @ rect @ velo).T
    uv = h[:, :2] / h[:, 2:]
    direct = (h[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < 1224) & (uv[:, 1] >= 0) & (uv[:, 1] < 370)
    assert np.array_equal(direct, inside)
    assert set(calib) == {"P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo"}


def test_kitti_calib_errors(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("P2: 1 2 3\n")
    with pytest.raises(ValueError, match="P2: 3 values, expected 12"):
        read_kitti_calib(path)
    path.write_text("P2: " + " ".join(["1"] * 12) + "\nR0_rect: 1 0 0 0 1 0 0 0 1\n")
    with pytest.raises(ValueError, match="has no Tr_velo_to_cam"):
        read_kitti_calib(path)


def test_nuscenes_real_sample(shared_data):
    folder = shared_data / "nuscenes"
    infos = read_nuscenes_infos(next(folder.glob("*.pkl")))
    scene = read_nuscenes_sample(infos[0], folder)
    assert scene.num_points == 34688
    names = sorted(c.name for c in scene.extras["cameras"])
    assert names == sorted(["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT",
                            "CAM_BACK_RIGHT"])
    for camera in scene.extras["cameras"]:
        assert camera.image.shape == (900, 1600, 3)
        _, _, inside = camera.project(scene.coord)
        assert 3000 <= inside.sum() <= 5000
    # every camera sees a different part of the sweep: few points in two cameras at once
    seen = np.stack([c.project(scene.coord)[2] for c in scene.extras["cameras"]])
    assert (seen.sum(0) > 1).sum() < 0.1 * seen.any(0).sum()


def test_nuscenes_missing_file(shared_data, tmp_path):
    infos = read_nuscenes_infos(next((shared_data / "nuscenes").glob("*.pkl")))
    with pytest.raises(FileNotFoundError, match="LIDAR_TOP"):
        read_nuscenes_sample(infos[0], tmp_path)


def test_kitti_camera_decomposition():
    K = np.array([[700.0, 0, 600], [0, 700, 180], [0, 0, 1]])
    P = np.c_[K, K @ np.array([0.06, -0.001, 0.003])]
    calib = {"P2": P, "R0_rect": np.eye(3), "Tr_velo_to_cam": np.c_[np.eye(3), [0.1, 0.2, 0.3]]}
    cam = kitti_camera(calib, np.zeros((360, 1200, 3), np.uint8))
    assert isinstance(cam, Camera)
    point = np.array([[1.0, 2.0, 10.0]])
    direct = P @ np.append(point[0] + [0.1, 0.2, 0.3], 1)
    uv, _, _ = cam.project(point)
    assert np.allclose(uv[0], direct[:2] / direct[2])
