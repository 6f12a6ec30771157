"""Chunked, augmented full-resolution prediction: the chunk plan, exact merging, TTA bookkeeping."""
import math

import numpy as np
import pytest
import torch

from pcseg.data import Scene, collate, voxelize_scene
from pcseg.engine.evaluator import Evaluator
from pcseg.engine.predict import TTA, augment_view, chunk_sample, plan_chunks, predict_scene
from predict_helpers import ContextMethod, PointwiseMethod, room_points

K = 5
VOXEL = 0.1


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_scene(n=6000, seed=0, size=(6.0, 4.0, 2.5)):
    rng = np.random.default_rng(seed)
    coord = room_points(rng, n, size)
    coord[: n // 4, :2] *= 0.4  # a denser corner, so the chunks are uneven
    return Scene(coord=coord, color=rng.random((n, 3)).astype(np.float32),
                 label=rng.integers(-1, K, n), scene_id=f"room_{seed}")


def run(method, scene, **options):
    return predict_scene(method.eval(), scene, voxel_size=VOXEL, features=("color",), num_classes=K, **options)


def test_plan_literal_two_columns():
    # 4 voxels in a row along x with 3 points each; at most 6 points per chunk and no overlap -> two chunks
    grid = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])
    plan = plan_chunks(grid, np.array([3, 3, 3, 3]), 6, [0, 0])
    assert [v.tolist() for v, _ in plan] == [[0, 1], [2, 3]]
    assert all(core.all() for _, core in plan)
    # one voxel of overlap: each chunk sees its neighbour's nearest column as context
    plan = plan_chunks(grid, np.array([1, 1, 1, 1]), 3, [1, 0])
    assert [(v.tolist(), c.tolist()) for v, c in plan] == [([0, 1, 2], [True, True, False]),
                                                           ([1, 2, 3], [False, True, True])]


def test_plan_partitions_cores_bounds_points_and_covers_the_margin():
    rng = np.random.default_rng(1)
    grid = np.unique(rng.integers(0, 60, (3000, 2)), axis=0)
    grid = np.concatenate([grid, grid[:200] // 4])  # a denser patch (duplicates are distinct voxels in z)
    counts = rng.integers(1, 9, len(grid))
    margin = [3, 2]
    plan = plan_chunks(grid, counts, 2500, margin)
    assert len(plan) > 4
    owner = np.zeros(len(grid), dtype=np.int64)
    for voxels, core in plan:
        assert counts[voxels].sum() <= 2500
        owner[voxels[core]] += 1
        # every voxel within the margin of a core voxel is in the chunk (the context a core voxel needs)
        lo, hi = grid[voxels[core]].min(0), grid[voxels[core]].max(0)
        near = np.all((grid >= lo - margin) & (grid <= hi + margin), axis=1)
        assert set(np.nonzero(near)[0]) == set(voxels.tolist())
    assert (owner == 1).all()  # the cores partition the voxels


def test_plan_refuses_a_limit_below_the_density():
    grid = np.zeros((5, 2), dtype=np.int64)  # five voxels stacked in z over one xy cell
    with pytest.raises(ValueError, match="max_points 4 is too small for the overlap"):
        plan_chunks(grid, np.ones(5, dtype=np.int64), 4, [1, 1])


def test_chunk_keeps_whole_scene_voxels():
    scene = make_scene(800)
    full = voxelize_scene(scene, VOXEL, ("color",))
    voxels = torch.arange(0, len(full.grid_coord), 3)
    piece, points = chunk_sample(full, voxels)
    assert torch.equal(piece.grid_coord, full.grid_coord[voxels]) and torch.equal(piece.feat, full.feat[voxels])
    assert torch.equal(voxels[piece.inverse], full.inverse[points])  # every point keeps its voxel
    assert set(points.tolist()) == set(torch.nonzero(torch.isin(full.inverse, voxels)).squeeze(1).tolist())


def test_limit_at_least_the_scene_is_one_identical_pass():
    scene = make_scene()
    method = ContextMethod(3, K)
    prob, pred = run(method, scene)
    prob_limit, pred_limit = run(method, scene, max_points=scene.num_points)
    assert torch.equal(prob, prob_limit) and torch.equal(pred, pred_limit)
    # the same as the evaluator's pass: voxelize, collate, predict, softmax
    batch = collate([voxelize_scene(scene, VOXEL, ("color",))])
    assert torch.equal(prob, torch.softmax(method.predict(batch), 1))


def test_mean_merge_is_exact_for_a_pointwise_model():
    scene = make_scene()
    method = PointwiseMethod(3, K)
    prob, pred = run(method, scene)
    prob_chunked, pred_chunked = run(method, scene, max_points=1500, overlap=0.5, merge="mean")
    assert torch.allclose(prob, prob_chunked, atol=1e-6) and torch.equal(pred, pred_chunked)
    assert torch.allclose(prob_chunked.sum(1), torch.ones(scene.num_points))


def test_core_merge_is_exact_when_the_receptive_field_fits_in_the_overlap():
    scene = make_scene()
    method = ContextMethod(3, K)
    prob, pred = run(method, scene)
    overlap = ContextMethod.RADIUS * VOXEL
    prob_core, pred_core = run(method, scene, max_points=2500, overlap=overlap, merge="core")
    assert torch.allclose(prob, prob_core, atol=1e-5)
    top2 = prob.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4
    assert torch.equal(pred[clear], pred_core[clear])
    # too little overlap: chunk borders cut the context, so some probabilities change (the check can fail)
    prob_cut, _ = run(method, scene, max_points=2500, overlap=VOXEL, merge="core")
    assert (prob - prob_cut).abs().max() > 1e-3


def test_tta_averages_the_views_in_probability_space():
    scene = make_scene(3000)
    method = ContextMethod(3, K)
    tta = TTA(rotations=2, flips=("x",), scales=(1.0, 1.2))
    assert len(tta.views()) == 8 and tta.views()[0] == (0.0, None, 1.0)
    prob, pred = run(method, scene, tta=tta)
    views = [run(method, augment_view(scene, a, f, s))[0] for a, f, s in tta.views()]
    assert torch.allclose(prob, torch.stack(views).mean(0), atol=1e-6)
    assert torch.equal(pred, torch.stack(views).sum(0).argmax(1))


def test_augment_view_flip_and_scale_about_the_centre():
    scene = make_scene(50)
    centre = (scene.coord.min(0) + scene.coord.max(0)) / 2
    flipped = augment_view(scene, flip="y")
    assert np.allclose(flipped.coord[:, 1], 2 * centre[1] - scene.coord[:, 1], atol=1e-5)
    assert np.array_equal(flipped.coord[:, [0, 2]], scene.coord[:, [0, 2]])
    scaled = augment_view(scene, scale=2.0)
    assert np.allclose(scaled.coord, (scene.coord - centre) * 2 + centre, atol=1e-5)
    quarter = augment_view(scene, angle=math.pi / 2)
    assert np.allclose(quarter.coord[:, 0] - centre[0], -(scene.coord[:, 1] - centre[1]), atol=1e-5)


def test_rotation_tta_gives_the_evaluators_classes(tmp_path):
    from pcseg.data import PointDataset

    scenes = [make_scene(2000, seed=s) for s in range(2)]

    class Source(list):
        class_names, num_classes = tuple("abcde"), K
        scene_ids = [s.scene_id for s in scenes]

    method = ContextMethod(3, K).eval()
    Evaluator(PointDataset(Source(scenes), voxel_size=VOXEL), tta_rotations=3)(method, save_dir=tmp_path)
    for s in scenes:
        _, pred = run(method, s, tta=TTA(rotations=3))
        assert np.array_equal(pred.numpy(), np.load(tmp_path / f"{s.scene_id}.npy"))


def test_bad_options():
    scene = make_scene(100)
    with pytest.raises(ValueError, match="merge must be one of"):
        run(PointwiseMethod(3, K), scene, merge="vote")
    with pytest.raises(ValueError, match="rotations must be >= 1"):
        TTA(rotations=0)
    with pytest.raises(ValueError, match="flips must be distinct axes"):
        TTA(flips=("z",))
    with pytest.raises(ValueError, match="scales must be positive"):
        TTA(scales=(0.0,))
