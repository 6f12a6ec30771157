import math

import numpy as np
import pytest

from pcseg.data import Scene
from pcseg.data.transforms import (
    ChromaticAutoContrast,
    ChromaticJitter,
    ChromaticTranslation,
    Compose,
    CropToBudget,
    ElasticDistortion,
    RandomFlip,
    RandomJitter,
    RandomRotateZ,
    RandomScale,
    default_transforms,
)


def _scene(n=500, seed=0):
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 3))
    return Scene(coord=(rng.random((n, 3)) * [4, 3, 2]).astype(np.float32),
                 color=rng.random((n, 3)).astype(np.float32), label=rng.integers(-1, 5, n),
                 scene_id="s", normal=(normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32),
                 instance=rng.integers(0, 9, n), strength=rng.random((n, 1)).astype(np.float32),
                 point_index=np.arange(n))


ALL = [RandomRotateZ(), RandomScale(0.8, 1.2, anisotropic=True), RandomFlip(1.0), RandomJitter(),
       ElasticDistortion(p=1.0), ChromaticAutoContrast(p=1.0), ChromaticTranslation(p=1.0), ChromaticJitter(p=1.0)]


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_shapes_dtypes_mapping_and_purity(transform):
    scene = _scene()
    before = scene.coord.copy(), scene.color.copy()
    out = transform(scene, np.random.default_rng(1))
    for name in Scene.PER_POINT:
        assert getattr(out, name).shape == getattr(scene, name).shape
    assert out.coord.dtype == np.float32 and out.color.dtype == np.float32
    assert np.array_equal(out.label, scene.label) and np.array_equal(out.point_index, scene.point_index)
    assert np.array_equal(scene.coord, before[0]) and np.array_equal(scene.color, before[1])  # input untouched
    assert out.color.min() >= 0 and out.color.max() <= 1
    assert np.allclose(np.linalg.norm(out.normal, axis=1), 1, atol=1e-5)
    # seeded: the same generator state gives the same result
    again = transform(scene, np.random.default_rng(1))
    assert np.array_equal(out.coord, again.coord) and np.array_equal(out.color, again.color)


def test_rotation_keeps_distances_and_rotates_normals():
    scene = _scene()
    out = RandomRotateZ(angle=(math.pi / 2, math.pi / 2))(scene, np.random.default_rng(0))
    d0 = np.linalg.norm(scene.coord[1:] - scene.coord[:-1], axis=1)
    d1 = np.linalg.norm(out.coord[1:] - out.coord[:-1], axis=1)
    assert np.allclose(d0, d1, atol=1e-5)
    assert np.allclose(out.normal[:, 0], -scene.normal[:, 1], atol=1e-6)
    assert np.allclose(out.coord[:, 2], scene.coord[:, 2])


def test_flip_mirrors_about_the_centre():
    scene = _scene()
    out = RandomFlip(p=1.0)(scene, np.random.default_rng(0))
    center = (scene.coord.min(0) + scene.coord.max(0)) / 2
    assert np.allclose(out.coord[:, :2], 2 * center[:2] - scene.coord[:, :2], atol=1e-5)
    assert np.allclose(out.normal[:, :2], -scene.normal[:, :2])


def test_elastic_is_smooth():
    base = _scene(1000)
    scene = base.replace(coord=np.concatenate([base.coord, base.coord + 0.002]), color=np.zeros((2000, 3),
                         np.float32), label=np.zeros(2000, np.int64), normal=None, instance=None, strength=None,
                         point_index=None)
    out = ElasticDistortion(params=((0.2, 0.4),), p=1.0)(scene, np.random.default_rng(0))
    shift = out.coord - scene.coord
    assert 0.005 < np.abs(shift).max() < 0.5
    # points 2 mm apart move alike; unrelated points do not
    twin = np.abs(shift[:1000] - shift[1000:]).max()
    assert twin < 0.1 * np.abs(shift[:500] - shift[500:1000]).max()


def test_crop_keeps_mapping_and_nearest_points():
    scene = _scene(1000)
    out = CropToBudget(300)(scene, np.random.default_rng(3))
    assert out.num_points == 300
    idx = out.point_index
    assert len(np.unique(idx)) == 300
    for name in ("coord", "color", "label", "normal", "instance", "strength"):
        assert np.array_equal(getattr(out, name), getattr(scene, name)[idx])
    small = CropToBudget(5000)(scene, np.random.default_rng(3))
    assert small is scene
    with pytest.raises(ValueError, match="max_points must be positive"):
        CropToBudget(0)


def test_compose_and_defaults():
    scene = _scene()
    pipeline = default_transforms("indoor", max_points=200, elastic=True)
    assert isinstance(pipeline, Compose) and "CropToBudget(max_points=200" in repr(pipeline)
    a = pipeline(scene, np.random.default_rng(7))
    b = pipeline(scene, np.random.default_rng(7))
    c = pipeline(scene, np.random.default_rng(8))
    assert a.num_points == 200 and np.array_equal(a.coord, b.coord) and not np.array_equal(a.coord, c.coord)
    outdoor = default_transforms("outdoor")(scene, np.random.default_rng(0))
    assert np.array_equal(outdoor.color, scene.color)  # no colour augmentation outdoors
    with pytest.raises(ValueError, match="kind"):
        default_transforms("space")
