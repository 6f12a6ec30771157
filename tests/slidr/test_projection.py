"""Image-lidar pairs of the real KITTI and nuScenes samples, and bad calibration / images / geometry."""
import numpy as np
import pytest

from pcseg.data.camera import Camera, read_kitti_object, read_nuscenes_infos, read_nuscenes_sample
from pcseg.methods.slidr import camera_pairs, check_camera, pixel_pairs, scale_camera
from pcseg.superpixels import SuperpixelCache, SuperpixelParams


@pytest.fixture
def grid_cache(tmp_path):
    return SuperpixelCache(tmp_path, SuperpixelParams(method="grid", n_segments=150))


def test_kitti_pairs_real_sample(shared_data, grid_cache):
    scene = read_kitti_object(shared_data / "kitti" / "object", "000000")
    (camera,) = scene.extras["cameras"]
    pairs = camera_pairs(scene.coord, [camera], grid_cache, scene_id=scene.scene_id)["slidr_pairs"].numpy()
    assert pairs.shape == (20285, 4) and (pairs[:, 1] == 0).all()
    assert pairs[:, 2].min() >= 0 and pairs[:, 2].max() < 370 and pairs[:, 3].min() >= 0 and pairs[:, 3].max() < 1224
    _, depth, _ = camera.project(scene.coord[pairs[:, 0]])
    assert (depth > 0).all()
    # point 0 by hand from the matrices of calib/000000.txt: x_rect = R0_rect Tr_velo_to_cam [p, 1], then P2
    p = np.array([18.323999404907227, 0.04899999871850014, 0.8289999961853027, 1.0])
    tr = np.array([[6.927964e-03, -9.999722e-01, -2.757829e-03, -2.457729e-02],
                   [-1.162982e-03, 2.749836e-03, -9.999955e-01, -6.127237e-02],
                   [9.999753e-01, 6.931141e-03, -1.143899e-03, -3.321029e-01]])
    r0 = np.array([[9.999128e-01, 1.009263e-02, -8.511932e-03],
                   [-1.012729e-02, 9.999406e-01, -4.037671e-03],
                   [8.470675e-03, 4.123522e-03, 9.999556e-01]])
    p2 = np.array([[7.070493e02, 0.0, 6.040814e02, 4.575831e01],
                   [0.0, 7.070493e02, 1.805066e02, -3.454157e-01],
                   [0.0, 0.0, 1.0, 4.981016e-03]])
    x, y, w = p2 @ np.append(r0 @ (tr @ p), 1.0)
    assert abs(w - 17.9917) < 1e-3  # depth in the rectified frame (+ the tiny offset of P2)
    u, v = x / w, y / w
    assert abs(u - 602.085) < 1e-3 and abs(v - 141.746) < 1e-3
    assert np.array_equal(scene.coord[0], p[:3].astype(np.float32))
    assert pairs[0].tolist() == [0, 0, 141, 602]


def test_nuscenes_pairs_real_sample(shared_data, grid_cache):
    folder = shared_data / "nuscenes"
    scene = read_nuscenes_sample(read_nuscenes_infos(next(folder.glob("*.pkl")))[0], folder)
    cameras = scene.extras["cameras"]
    out = camera_pairs(scene.coord, cameras, grid_cache, scene_id=scene.scene_id)
    pairs = out["slidr_pairs"].numpy()
    counts = {cameras[c].name: int((pairs[:, 1] == c).sum()) for c in range(len(cameras))}
    assert counts == {"CAM_FRONT": 3067, "CAM_FRONT_RIGHT": 3079, "CAM_FRONT_LEFT": 3704, "CAM_BACK": 4826,
                      "CAM_BACK_LEFT": 4097, "CAM_BACK_RIGHT": 3379}
    assert len(out["slidr_images"]) == 6 and all(img.shape == (3, 900, 1600) for img in out["slidr_images"])
    for c, camera in enumerate(cameras):
        _, depth, _ = camera.project(scene.coord[pairs[pairs[:, 1] == c, 0]])
        assert (depth > 0).all()
    # point 8473 in CAM_FRONT by hand: cam2img @ (lidar2cam @ [p, 1])[:3] / depth
    p = np.array([-2.985280752182007, 88.35128021240234, 4.220588684082031, 1.0])
    lidar2cam = np.array([[0.99997026, 0.00340737, 0.00692074, 0.01687305],
                          [0.00685271, 0.01958963, -0.99978465, -0.32902390],
                          [-0.00354221, 0.99980229, 0.01956570, -0.42922217]])
    fx, cx, cy = 1266.4172030, 816.2670197, 491.5070658
    xc, yc, zc = lidar2cam @ p
    u, v = fx * xc / zc + cx, fx * yc / zc + cy
    assert abs(zc - 87.998) < 1e-2 and abs(u - 778.30) < 0.02 and abs(v - 450.66) < 0.02
    front = pairs[(pairs[:, 1] == 0) & (pairs[:, 0] == 8473)]
    assert cameras[0].name == "CAM_FRONT" and front.tolist() == [[8473, 0, 450, 778]]


def test_pixel_pairs_literal_and_scaled_camera():
    K = np.array([[10.0, 0, 4], [0, 10, 3], [0, 0, 1]])
    camera = Camera("cam", np.zeros((6, 8, 3), np.uint8), K, np.eye(4))
    coord = np.array([[0.0, 0, 2], [0.79, 0.59, 2], [0, 0, -2], [0.8, 0, 2], [-0.8, -0.6, 2]])
    point, row, col = pixel_pairs(coord, camera)
    assert point.tolist() == [0, 1, 4] and row.tolist() == [3, 5, 0] and col.tolist() == [4, 7, 0]
    half = scale_camera(camera, 0.5)
    assert half.image.shape == (3, 4, 3) and np.allclose(half.intrinsic, [[5, 0, 2], [0, 5, 1.5], [0, 0, 1]])
    point, row, col = pixel_pairs(coord, half)
    assert point.tolist() == [0, 1, 4] and row.tolist() == [1, 2, 0] and col.tolist() == [2, 3, 0]


def test_image_of_another_size_than_its_calibration(shared_data):
    scene = read_kitti_object(shared_data / "kitti" / "object", "000000")
    (camera,) = scene.extras["cameras"]
    check_camera(camera)
    for image in (camera.image[::2, ::2], np.zeros((740, 2448, 3), np.uint8)):  # half / double size, K unchanged
        bad = Camera(camera.name, np.ascontiguousarray(image), camera.intrinsic, camera.lidar2cam)
        with pytest.raises(ValueError, match="image_2.*principal point .* does not have the size its calibration"):
            check_camera(bad, "camera 'image_2'")


def test_calibration_missing_a_matrix(tmp_path, grid_cache):
    image = np.zeros((8, 8, 3), np.uint8)
    K = np.array([[10.0, 0, 4], [0, 10, 4], [0, 0, 1]])
    with pytest.raises(ValueError, match="scene 's', camera 'c': the calibration has no lidar2cam matrix"):
        camera_pairs(np.zeros((3, 3), np.float32), [Camera("c", image, K, None)], grid_cache, scene_id="s")
    with pytest.raises(ValueError, match=r"intrinsic must be a finite \(3, 3\) matrix, got shape \(3, 4\)"):
        check_camera(Camera("c", image, np.zeros((3, 4)), np.eye(4)))
    with pytest.raises(ValueError, match="not a rigid transform"):
        check_camera(Camera("c", image, K, np.diag([2.0, 1, 1, 1])))
    with pytest.raises(ValueError, match="has no camera images"):
        camera_pairs(np.zeros((3, 3), np.float32), [], grid_cache, scene_id="s")


def test_all_points_behind_the_camera_warn_and_give_no_pairs(grid_cache):
    camera = Camera("front", np.zeros((8, 8, 3), np.uint8), np.array([[10.0, 0, 4], [0, 10, 4], [0, 0, 1]]),
                    np.eye(4))
    coord = np.random.default_rng(0).uniform(-1, 1, (50, 3)) - [0, 0, 3]  # z < 0: behind
    with pytest.warns(RuntimeWarning, match="scene 's', camera 'front': no lidar point .* all lie behind"):
        out = camera_pairs(coord, [camera], grid_cache, scene_id="s")
    assert out["slidr_pairs"].shape == (0, 4)


def test_nuscenes_info_missing_a_matrix(shared_data):
    folder = shared_data / "nuscenes"
    info = read_nuscenes_infos(next(folder.glob("*.pkl")))[0]
    info["images"]["CAM_BACK"].pop("lidar2cam")
    with pytest.raises(ValueError, match="camera CAM_BACK: the calibration has no lidar2cam"):
        read_nuscenes_sample(info, folder, cameras=["CAM_BACK"])


def test_semantickitti_odometry_layout_with_images(shared_data, tmp_path, grid_cache):
    """The KITTI object frame rewritten in the odometry layout (calib.txt: P0..P3 and Tr = R0_rect Tr_velo_to_cam)
    projects the same 20,285 points."""
    from pcseg.data.camera import SemanticKITTICameras, read_kitti_calib, read_kitti_odometry_calib

    kitti = shared_data / "kitti" / "object" / "training"
    calib = read_kitti_calib(kitti / "calib" / "000000.txt")
    sequence = tmp_path / "sequences" / "00"
    for folder, name in (("velodyne", "000000.bin"), ("image_2", "000000.png")):
        (sequence / folder).mkdir(parents=True)
        (sequence / folder / name).symlink_to(kitti / folder / name)
    rect, velo = np.eye(4), np.eye(4)
    rect[:3, :3], velo[:3] = calib["R0_rect"], calib["Tr_velo_to_cam"]
    rows = {f"P{i}": calib[f"P{i}"] for i in range(4)} | {"Tr": (rect @ velo)[:3]}
    (sequence / "calib.txt").write_text("".join(f"{k}: {' '.join(f'{x:.12e}' for x in v.ravel())}\n"
                                                for k, v in rows.items()))
    source = SemanticKITTICameras(tmp_path, split="test", sequences=["00"])
    scene = source[0]
    assert scene.scene_id == "00/000000" and (scene.label == -1).all()
    pairs = camera_pairs(scene.coord, scene.extras["cameras"], grid_cache)["slidr_pairs"]
    assert len(pairs) == 20285
    (sequence / "calib.txt").write_text("P2: " + " ".join(["1"] * 12) + "\n")
    with pytest.raises(ValueError, match="calib.txt has no Tr"):
        read_kitti_odometry_calib(sequence / "calib.txt")
