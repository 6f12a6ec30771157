"""Every backbone of MODELS: forward + backward on a small batch, shapes, finite gradients; heads."""
import pytest
import torch

from pcseg.models import MODELS, ProjectionHead, SegHead
from pcseg.sparse import SparseTensor


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny batches: one thread is several times faster than two on a shared 2-core machine (OpenMP barriers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_batch(in_channels: int, seed: int = 0) -> SparseTensor:
    """Two scenes of random voxels in a 20 x 18 x 12 grid."""
    g = torch.Generator().manual_seed(seed)
    coords = (torch.rand(2, 20, 18, 12, generator=g) < 0.15).nonzero().to(torch.int32)
    feats = torch.randn(len(coords), in_channels, generator=g)
    return SparseTensor(feats, coords)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_forward_backward(name):
    torch.manual_seed(0)
    model = MODELS[name](4, backend="native")
    x = small_batch(4)
    y = model(x)
    assert isinstance(y, SparseTensor)
    assert y.feats.shape == (x.num_voxels, model.out_channels)
    assert torch.equal(y.coords, x.coords)
    head = SegHead(model.out_channels, 5)
    logits = head(y.feats)
    assert logits.shape == (x.num_voxels, 5)
    logits.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    assert any(float(p.grad.abs().sum()) > 0 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(n for n in MODELS if "-dw" in n))
def test_depthwise_variant_has_at_most_half_the_parameters(name):
    twin = name.replace("-dw", "")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(MODELS[name](6, backend="native")) <= count(MODELS[twin](6, backend="native")) / 2


def test_model_is_deterministic_and_keeps_odd_extents():
    torch.manual_seed(1)
    model = MODELS["spunet14"](3, channels=(8, 8, 16, 16, 16, 8, 8, 8), backend="native").eval()
    # extent (5, 3, 7): a k=2 s=2 conv on that grid would drop the voxel at (4, 2, 6); the model rounds the
    # spatial shape up to a multiple of 16, so it survives every level
    x = SparseTensor(torch.ones(2, 3), torch.tensor([[0, 0, 0, 0], [0, 4, 2, 6]], dtype=torch.int32))
    seen = []
    model.down[0].register_forward_hook(lambda module, inp, out: seen.append(out.coords.tolist()))
    a, b = model(x).feats, model(x).feats
    assert torch.equal(a, b)
    assert seen[0] == [[0, 0, 0, 0], [0, 2, 1, 3]]


def test_model_rejects_wrong_input():
    model = MODELS["spunet14"](3, backend="native")
    with pytest.raises(ValueError, match="channels"):
        model(small_batch(4))
    with pytest.raises(ValueError, match="8 entries"):
        MODELS["spunet14"](3, channels=(8, 8))


def test_heads():
    feats = torch.randn(10, 16, requires_grad=True)
    proj = ProjectionHead(16, 8)
    out = proj(feats)
    assert out.shape == (10, 8)
    assert torch.allclose(out.norm(dim=1), torch.ones(10), atol=1e-5)
    assert ProjectionHead(16, 8, hidden_channels=32, normalize=False)(feats).shape == (10, 8)
    assert SegHead(16, 3)(feats).shape == (10, 3)
    with pytest.raises(ValueError):
        SegHead(0, 3)
