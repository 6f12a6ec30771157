import numpy as np
import pytest
import torch

from pcseg.methods.slidr import RotationPretext, rotation_batch
from pcseg.models.image_encoder import ImageEncoder, load_image_encoder, normalize_image, save_image_encoder


def test_encoder_shapes_and_gradients():
    torch.manual_seed(0)
    encoder = ImageEncoder(channels=(8, 16, 16), layers=(1, 2, 1))
    image = torch.randint(0, 256, (2, 3, 30, 44), dtype=torch.uint8)
    feats = encoder(normalize_image(image))
    assert feats.shape == (2, 16, 4, 6) and encoder.stride == 8  # ceil(30 / 8), ceil(44 / 8)
    dense = encoder.dense(normalize_image(image))
    assert dense.shape == (2, 16, 30, 44)
    dense.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    with pytest.raises(ValueError, match="uint8"):
        normalize_image(image.float())
    with pytest.raises(ValueError, match="same length"):
        ImageEncoder(channels=(8, 16), layers=(1,))


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    encoder = ImageEncoder(channels=(8, 12), layers=(1, 1)).eval()
    path = save_image_encoder(encoder, tmp_path / "enc.pt", meta={"steps": 3})
    loaded = load_image_encoder(path).eval()
    x = normalize_image(torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8))
    assert torch.equal(encoder(x), loaded(x))
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="pcseg pretrain-2d"):
        load_image_encoder(tmp_path / "missing.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an image encoder checkpoint"):
        load_image_encoder(tmp_path / "other.pt")


def test_rotation_batch_literal():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    crops, target = rotation_batch([image], 4, np.random.default_rng(0))
    assert crops.shape == (4, 3, 4, 4) and target.tolist() == [0, 1, 2, 3]
    for k in range(4):
        assert torch.equal(crops[k], torch.rot90(crops[0], k, dims=(1, 2)))
    window = torch.from_numpy(image.transpose(2, 0, 1).copy())
    assert any(torch.equal(crops[0], w) for w in (window[:, :, :4], window[:, :, 1:], window[:, :, :4].flip(2),
                                                  window[:, :, 1:].flip(2)))
    with pytest.raises(ValueError, match="does not fit"):
        rotation_batch([image], 5, np.random.default_rng(0))


def test_rotation_pretext_learns_orientation():
    # images with a bright top and a dark bottom: the rotation is visible from any crop
    rng = np.random.default_rng(0)
    images = []
    for _ in range(4):
        image = rng.integers(0, 60, (24, 24, 3)).astype(np.uint8)
        image[:8] += 180
        images.append(image)
    torch.manual_seed(0)
    model = RotationPretext(ImageEncoder(channels=(8, 8), layers=(1, 1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    crops, target = rotation_batch(images, 16, np.random.default_rng(1))
    assert model.accuracy(crops, target) < 0.6
    for _ in range(40):
        loss = model(*rotation_batch(images, 16, rng))["rotation"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert model.accuracy(crops, target) > 0.9
