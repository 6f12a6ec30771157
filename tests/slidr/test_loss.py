"""Superpixel pooling, the InfoNCE loss and the SLidR method on tiny batches."""
import math

import numpy as np
import pytest
import torch

from pcseg.data import PointDataset, collate
from pcseg.data.camera import Camera
from pcseg.data.scene import Scene
from pcseg.methods.slidr import InfoNCE, Slidr, SlidrPairs, info_nce, superpixel_pool
from pcseg.models import MODELS
from pcseg.models.image_encoder import ImageEncoder
from pcseg.superpixels import SuperpixelCache, SuperpixelParams


def slow_pool(point_feat, point_sp, pixel_feat, pixel_sp, num_sp, min_points):
    kept, p_rows, q_rows = [], [], []
    for s in range(num_sp):
        members = [i for i in range(len(point_sp)) if int(point_sp[i]) == s]
        if len(members) < max(1, min_points):
            continue
        pixels = [j for j in range(len(pixel_sp)) if int(pixel_sp[j]) == s]
        kept.append(s)
        p_rows.append(sum(point_feat[i] for i in members) / len(members))
        q_rows.append(sum(pixel_feat[j] for j in pixels) / len(pixels))
    return torch.stack(p_rows), torch.stack(q_rows), torch.tensor(kept)


@pytest.mark.parametrize("min_points", [1, 3, 6])
def test_superpixel_pool_matches_slow_loop(min_points):
    g = torch.Generator().manual_seed(min_points)
    num_sp = 12
    pixel_sp = torch.cat([torch.arange(num_sp), torch.randint(0, num_sp, (300,), generator=g)])  # every id used
    point_sp = torch.randint(0, num_sp - 2, (80,), generator=g)  # the last two superpixels get no point
    point_feat = torch.randn(80, 5, generator=g, dtype=torch.float64, requires_grad=True)
    pixel_feat = torch.randn(len(pixel_sp), 5, generator=g, dtype=torch.float64)
    p, q, kept = superpixel_pool(point_feat, point_sp, pixel_feat, pixel_sp, num_sp, min_points)
    ps, qs, ks = slow_pool(point_feat, point_sp, pixel_feat, pixel_sp, num_sp, min_points)
    assert torch.equal(kept, ks) and torch.allclose(p, ps) and torch.allclose(q, qs)
    counts = torch.bincount(point_sp, minlength=num_sp)
    assert kept.tolist() == [s for s in range(num_sp) if counts[s] >= min_points]
    p.sum().backward()  # gradient of a mean: 1 / count for the points of kept superpixels, 0 elsewhere
    expected = torch.where(counts[point_sp] >= min_points, 1.0 / counts[point_sp].double(), torch.zeros(()))
    assert torch.allclose(point_feat.grad, expected[:, None].expand(-1, 5))


def test_info_nce_hand_computed():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    k = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    # cosine similarities: row 0 (1, 0, -1), row 1 (0, 1, 0), row 2 (s, s, -s) with s = 1/sqrt(2); t = 0.5
    s, e = 1 / math.sqrt(2), math.exp
    rows = [-2 + math.log(e(2) + e(0) + e(-2)),
            -2 + math.log(e(0) + e(2) + e(0)),
            2 * s + math.log(2 * e(2 * s) + e(-2 * s))]
    assert info_nce(q, k, 0.5).item() == pytest.approx(sum(rows) / 3, rel=1e-6)
    # two orthogonal pairs at SLidR's temperature: log(1 + exp(-1 / 0.07))
    eye = torch.eye(2, dtype=torch.float64)
    assert InfoNCE(0.07)(eye, eye).item() == pytest.approx(math.log1p(math.exp(-1 / 0.07)), rel=1e-9)


def test_info_nce_minimal_for_matched_pairs():
    g = torch.Generator().manual_seed(0)
    key = torch.randn(6, 16, generator=g, dtype=torch.float64)
    query = key + 0.5 * torch.randn(6, 16, generator=g, dtype=torch.float64)  # noisy views of the keys
    matched = info_nce(query, key, 0.5).item()
    for _ in range(30):  # any other pairing of the same embeddings costs more
        perm = torch.randperm(6, generator=g)
        if not torch.equal(perm, torch.arange(6)):
            assert info_nce(query[perm], key, 0.5).item() > matched
    with pytest.raises(ValueError, match="both be"):
        info_nce(torch.zeros(0, 4), torch.zeros(0, 4))


def _scene(seed: int, behind: bool = False) -> Scene:
    """A street-like toy: a ground plane and two boxes in front of a 32 x 24 camera looking along +x."""
    rng = np.random.default_rng(seed)
    n = 600
    coord = np.c_[rng.uniform(3, 12, n), rng.uniform(-4, 4, n), rng.uniform(-1.5, 1.0, n)].astype(np.float32)
    if behind:
        coord[:, 0] *= -1
    image = np.zeros((24, 32, 3), np.uint8)
    image[:12] = (120, 160, 220)
    image[12:, :16] = (90, 90, 90)
    image[12:, 16:] = (60, 140, 40)
    K = np.array([[16.0, 0, 16], [0, 16, 12], [0, 0, 1]])
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]  # x forward, y left, z up -> camera axes
    label = rng.integers(0, 3, n)
    return Scene(coord=coord, color=np.zeros((n, 3), np.float32), label=label, scene_id=f"toy_{seed}",
                 strength=rng.random((n, 1)).astype(np.float32),
                 extras={"cameras": [Camera("front", image, K, lidar2cam)]})


class _Source:
    class_names = ("a", "b", "c")
    num_classes = 3

    def __init__(self, scenes):
        self.scenes = scenes
        self.scene_ids = [s.scene_id for s in scenes]

    def __len__(self):
        return len(self.scenes)

    def __getitem__(self, i):
        return self.scenes[i]


def _method(max_pairs=4096, min_points=2):
    torch.manual_seed(0)
    backbone = MODELS["spunet14"](1, base_channels=8, channels=(8, 8, 8, 8, 8, 8, 8, 8), backend="native")
    cfg = Slidr.Config(max_pairs=max_pairs, min_points=min_points, proj_dim=16)
    return Slidr(backbone, 3, cfg, image_encoder=ImageEncoder(channels=(8, 8), layers=(1, 1)))


def _batch(tmp_path, scenes):
    dataset = PointDataset(_Source(scenes), voxel_size=0.5, features=("strength",), keep_raw_coord=True)
    pairs = SlidrPairs(dataset, SuperpixelCache(tmp_path, SuperpixelParams(method="grid", n_segments=12)))
    return collate([pairs[i] for i in range(len(scenes))])


def test_slidr_forward_backward_frozen_encoder(tmp_path):
    batch = _batch(tmp_path, [_scene(0), _scene(1)])
    method = _method()
    method.train()
    assert not method.image_encoder.training
    stats = method.image_encoder.stem[1].running_mean.clone()
    point_emb, pixel_emb = method.embeddings(batch)
    assert point_emb.shape == pixel_emb.shape and point_emb.shape[1] == 16
    assert 12 < len(point_emb) <= 24  # two cameras x 12 grid cells, cells without 2 points dropped
    loss = method(batch)["slidr"]
    assert math.log(len(point_emb)) * 0.5 < loss.item() < 20
    loss.backward()
    assert all(p.grad is None for p in method.image_encoder.parameters())
    for name, p in method.named_parameters():
        if not name.startswith("image_encoder."):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert torch.equal(method.image_encoder.stem[1].running_mean, stats)
    with pytest.raises(ValueError, match="slidr_images"):
        method(collate([PointDataset(_Source([_scene(0)]), voxel_size=0.5, features=("strength",))[0]]))


def test_slidr_caps_pairs_per_batch(tmp_path, monkeypatch):
    import pcseg.methods.slidr as slidr

    batch = _batch(tmp_path, [_scene(0), _scene(1)])
    seen = []
    monkeypatch.setattr(slidr, "info_nce", lambda q, k, t: seen.append((q.shape, k.shape, t)) or q.sum())
    _method(max_pairs=3)(batch)
    _method()(batch)
    assert seen[0] == (torch.Size([3, 16]), torch.Size([3, 16]), 0.07)
    assert seen[1][0][0] > 12


def test_slidr_batch_with_every_point_behind_the_camera(tmp_path):
    with pytest.warns(RuntimeWarning, match="all lie behind the camera"):
        batch = _batch(tmp_path, [_scene(0, behind=True)])
    method = _method()
    with pytest.warns(RuntimeWarning, match="no superpixel of the batch"):
        loss = method(batch)["slidr"]
    assert loss.item() == 0.0
    loss.backward()  # a zero loss with a gradient path: the trainer's step still works
