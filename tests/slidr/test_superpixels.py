import numpy as np
import pytest

from pcseg import superpixels as sp_module
from pcseg.data.synthetic_outdoor import generate_outdoor_scene
from pcseg.superpixels import (
    SuperpixelCache,
    SuperpixelParams,
    cache_key,
    compute_superpixels,
    grid_superpixels,
    slic_superpixels,
)


@pytest.fixture(scope="module")
def street_image():
    return generate_outdoor_scene(5, beams=4, azimuth_steps=64, image_size=(192, 64)).extras["cameras"][0].image


def test_grid_literal():
    # 6 cells on a 4 x 6 image: 2 rows x 3 columns of 2 x 2 pixels
    expected = np.array([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]])
    assert np.array_equal(grid_superpixels(4, 6, 6), expected)
    labels = grid_superpixels(128, 384, 150)
    assert labels.dtype == np.int64 and labels.shape == (128, 384)
    assert 120 <= len(np.unique(labels)) <= 180 and labels.max() + 1 == len(np.unique(labels))


def test_slic_street_image(street_image):
    labels = slic_superpixels(street_image, 150, 6.0, 3.0)
    assert labels.shape == street_image.shape[:2] and labels.dtype == np.int64
    count = labels.max() + 1
    assert np.array_equal(np.unique(labels), np.arange(count))  # consecutive
    assert 40 <= count <= 200
    # superpixels follow the image: the mean colour varies much less inside a superpixel than over the image
    flat = street_image.reshape(-1, 3).astype(np.float64)
    inside = sum(flat[labels.ravel() == k].var(0).sum() * (labels == k).sum() for k in range(count)) / flat.shape[0]
    assert inside < 0.3 * flat.var(0).sum()
    assert np.array_equal(labels, slic_superpixels(street_image, 150, 6.0, 3.0))  # deterministic


def test_cache_computes_once_and_keys_on_params(street_image, tmp_path, monkeypatch):
    cache = SuperpixelCache(tmp_path, SuperpixelParams())
    first = cache(street_image)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(sp_module, "compute_superpixels", fail)
    assert np.array_equal(cache(street_image), first)
    monkeypatch.undo()
    # other parameters or another image -> another file
    assert cache_key(street_image, SuperpixelParams(n_segments=50)) != cache_key(street_image, SuperpixelParams())
    other = street_image.copy()
    other[0, 0, 0] ^= 1
    assert cache_key(other, SuperpixelParams()) != cache_key(street_image, SuperpixelParams())
    # a corrupt cache file is recomputed and replaced
    files[0].write_bytes(b"not an npy file")
    assert np.array_equal(cache(street_image), first)
    assert np.array_equal(np.load(files[0]), first)


def test_grid_fallback_without_skimage(street_image, tmp_path, monkeypatch):
    monkeypatch.setattr(sp_module, "_have_skimage", lambda: False)
    with pytest.warns(RuntimeWarning, match="scikit-image is not installed"):
        cache = SuperpixelCache(tmp_path, SuperpixelParams(method="slic", n_segments=24))
    assert cache.params.method == "grid"
    assert np.array_equal(cache(street_image), grid_superpixels(64, 192, 24))


def test_bad_input():
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\)"):
        compute_superpixels(np.zeros((4, 4), np.uint8), SuperpixelParams())
    with pytest.raises(ValueError, match="uint8"):
        compute_superpixels(np.zeros((4, 4, 3), np.float32), SuperpixelParams())
    with pytest.raises(ValueError, match="method must be one of"):
        SuperpixelParams(method="felzenszwalb")
