import numpy as np
import pytest

from pcseg.data import INDOOR_CLASSES, SyntheticIndoor, generate_indoor_scene


def test_indoor_deterministic_by_seed():
    a, b, c = generate_indoor_scene(4, 5000), generate_indoor_scene(4, 5000), generate_indoor_scene(5, 5000)
    for name in ("coord", "color", "label", "normal", "instance"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.coord, c.coord)


def test_indoor_scene_contents():
    scene = generate_indoor_scene(0, 20000)
    assert scene.num_points == 20000
    assert scene.coord.dtype == np.float32 and scene.color.dtype == np.float32
    assert scene.color.min() >= 0 and scene.color.max() <= 1
    assert np.allclose(np.linalg.norm(scene.normal, axis=1), 1, atol=1e-5)
    assert set(np.unique(scene.label)) <= set(range(len(INDOOR_CLASSES)))
    # floor at the bottom, ceiling at the top
    z = scene.coord[:, 2]
    assert np.median(z[scene.label == 0]) < 0.05
    assert np.median(z[scene.label == 2]) > 2.4


def test_indoor_every_class_appears_over_a_few_scenes():
    seen = set()
    for i in range(8):
        seen |= set(np.unique(generate_indoor_scene((0, 0, i), 8000).label).tolist())
    assert seen == set(range(len(INDOOR_CLASSES)))


def test_indoor_source_splits_and_errors():
    train, val = SyntheticIndoor(split="train", num_scenes=2, points_per_scene=1000), SyntheticIndoor(
        split="val", num_scenes=2, points_per_scene=1000)
    assert train.scene_ids == ["indoor_train_0000", "indoor_train_0001"]
    assert not np.array_equal(train[0].coord, val[0].coord)
    assert train[1] is train[1]  # cached
    with pytest.raises(ValueError, match="takes no root"):
        SyntheticIndoor(root="/data")
    with pytest.raises(ValueError, match="split"):
        SyntheticIndoor(split="dev")
    with pytest.raises(IndexError):
        train[2]


def test_outdoor_deterministic_and_contents():
    from pcseg.data import OUTDOOR_CLASSES, generate_outdoor_scene

    a, b = generate_outdoor_scene(3, beams=16, azimuth_steps=512), generate_outdoor_scene(3, beams=16,
                                                                                          azimuth_steps=512)
    assert np.array_equal(a.coord, b.coord) and np.array_equal(a.label, b.label)
    assert np.array_equal(a.extras["cameras"][0].image, b.extras["cameras"][0].image)
    assert not np.array_equal(a.coord, generate_outdoor_scene(4, beams=16, azimuth_steps=512).coord)
    assert 0.5 * 16 * 512 < a.num_points <= 16 * 512
    assert set(np.unique(a.label)) <= set(range(len(OUTDOOR_CLASSES)))
    assert a.strength.shape == (a.num_points, 1) and (a.color == 0).all()
    ground = np.isin(a.label, [OUTDOOR_CLASSES.index("road"), OUTDOOR_CLASSES.index("terrain")])
    assert np.allclose(np.median(a.coord[ground, 2]), -1.73, atol=0.05)  # sensor 1.73 m above the ground
    # 16 rings: elevation angles of the points cluster on the beams
    elevation = np.degrees(np.arctan2(a.coord[:, 2], np.linalg.norm(a.coord[:, :2], axis=1)))
    assert elevation.max() < 2.5 and elevation.min() > -25.5


def test_outdoor_camera_sees_what_the_lidar_sees():
    from pcseg.data import OUTDOOR_CLASSES, generate_outdoor_scene

    scene = generate_outdoor_scene(0)
    (camera,) = scene.extras["cameras"]
    assert camera.image.shape == (128, 384, 3) and camera.image.dtype == np.uint8
    uv, depth, inside = camera.project(scene.coord)
    assert inside.sum() > 1000
    pixel = camera.image[uv[inside, 1].astype(int), uv[inside, 0].astype(int)].astype(int)
    label = scene.label[inside]
    green = (pixel[:, 1] > pixel[:, 0]) & (pixel[:, 1] > pixel[:, 2])
    grey = np.abs(pixel - pixel.mean(1, keepdims=True)).max(1) < 12
    veg = np.isin(label, [OUTDOOR_CLASSES.index("vegetation"), OUTDOOR_CLASSES.index("terrain")])
    road = label == OUTDOOR_CLASSES.index("road")
    assert green[veg].mean() > 0.85 and grey[road].mean() > 0.85
    assert grey[veg].mean() < 0.15


def test_outdoor_source():
    from pcseg.data import SyntheticOutdoor

    source = SyntheticOutdoor(split="test", num_scenes=1, beams=8, azimuth_steps=256, image_size=(64, 32))
    assert source.scene_ids == ["outdoor_test_0000"] and source.num_classes == 8
    assert source[0].extras["cameras"][0].image.shape == (32, 64, 3)
