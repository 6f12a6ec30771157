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
