import pytest
import torch

from pcseg.ops._ext import has_op
from pcseg.ops.neighbors import knn_query, knn_query_reference, radius_query, radius_query_reference

needs_kernel = pytest.mark.skipif(not has_op("knn_query", "cpu"), reason="pcseg._C is not built")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
RADIUS = [radius_query_reference, pytest.param(radius_query, marks=needs_kernel)]
KNN = [knn_query_reference, pytest.param(knn_query, marks=needs_kernel)]

POINTS = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0.5, 0, 0], [5, 5, 5]])
QUERY = torch.tensor([[0.0, 0, 0], [0.75, 0, 0], [9, 9, 9]])


@pytest.mark.parametrize("impl", RADIUS)
def test_literal_radius(impl):
    qi, pj = impl(QUERY, POINTS, 1.0)
    # query 0: points 0 (d2 0), 3 (0.25), 1 (1.0, on the sphere); query 1: 1 and 3 (0.0625 each: lower index
    # first), then 0 (0.5625); query 2: none
    assert qi.tolist() == [0, 0, 0, 1, 1, 1]
    assert pj.tolist() == [0, 3, 1, 1, 3, 0]


@pytest.mark.parametrize("impl", RADIUS)
def test_literal_radius_max_neighbors_keeps_nearest(impl):
    qi, pj = impl(QUERY, POINTS, 1.0, max_neighbors=2)
    assert qi.tolist() == [0, 0, 1, 1]
    assert pj.tolist() == [0, 3, 1, 3]


@pytest.mark.parametrize("impl", KNN)
def test_literal_knn_with_batches_and_padding(impl):
    query_batch = torch.tensor([0, 1, 0])
    point_batch = torch.tensor([0, 0, 1, 0, 1])
    index, dist2 = impl(QUERY, POINTS, 3, query_batch, point_batch)
    assert index.tolist() == [[0, 3, 1], [2, 4, -1], [1, 3, 0]]
    assert dist2[1, 2] == float("inf")
    assert dist2[0].tolist() == [0.0, 0.25, 1.0]
    assert dist2[1, 0] == pytest.approx(0.75 ** 2 + 4)


def random_sets(nq, npts, batches, dtype, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(npts, 3, generator=g, dtype=torch.float64) * scale).to(dtype)
    query = (torch.rand(nq, 3, generator=g, dtype=torch.float64) * 1.2 * scale - 0.1 * scale).to(dtype)
    if npts >= 8:
        points[-4:] = points[:4].clone()  # duplicated points: equal distances, tie by index
    qb = torch.randint(0, batches, (nq,), generator=g) if batches else None
    pb = torch.randint(0, batches, (npts,), generator=g) if batches else None
    return query, points, qb, pb


SIZES = [(0, 0), (0, 5), (5, 0), (1, 1), (3, 2), (200, 300), (700, 2500)]
DTYPES_BATCHES = [(torch.float32, 0), (torch.float32, 3), (torch.float64, 3)]


@needs_kernel
@pytest.mark.parametrize("nq, npts", SIZES)
@pytest.mark.parametrize("dtype, batches", DTYPES_BATCHES)
@pytest.mark.parametrize("radius, max_neighbors", [(0.05, None), (0.15, None), (0.15, 4), (0.6, None)])
def test_radius_kernel_matches_reference(nq, npts, batches, dtype, radius, max_neighbors):
    query, points, qb, pb = random_sets(nq, npts, batches, dtype, seed=nq + npts)
    out = radius_query(query, points, radius, qb, pb, max_neighbors)
    ref = radius_query_reference(query, points, radius, qb, pb, max_neighbors)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


@needs_kernel
@pytest.mark.parametrize("nq, npts", SIZES)
@pytest.mark.parametrize("dtype, batches", DTYPES_BATCHES)
@pytest.mark.parametrize("k", [1, 4, 33])
def test_knn_kernel_matches_reference(nq, npts, batches, dtype, k):
    query, points, qb, pb = random_sets(nq, npts, batches, dtype, seed=nq + npts + k)
    out = knn_query(query, points, k, qb, pb)
    ref = knn_query_reference(query, points, k, qb, pb)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


@needs_kernel
@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((1.0, 1.0, 0.0), id="flat"),
        pytest.param((1.0, 0.0, 0.0), id="line"),
        pytest.param((0.0, 0.0, 0.0), id="one-location"),
        pytest.param((1e4, 1e4, 1.0), id="wide-and-thin"),
    ],
)
def test_kernels_on_degenerate_layouts(shape):
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2000, 3, generator=g) * torch.tensor(shape) + 100.0
    query = torch.cat([points[:300], torch.tensor([[-50.0, 3e3, 7.0]])])  # plus one query far outside
    for k in (1, 10):
        out, ref = knn_query(query, points, k), knn_query_reference(query, points, k)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    radius = 0.05 * max(max(shape), 1.0)
    out, ref = radius_query(query, points, radius), radius_query_reference(query, points, radius)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


@needs_kernel
def test_knn_self_query_finds_itself_first():
    _, points, _, pb = random_sets(0, 3000, 2, torch.float32, seed=9)
    index, dist2 = knn_query(points[4:], points[4:], 5, pb[4:], pb[4:])
    assert torch.equal(index[:, 0], torch.arange(len(points) - 4))
    assert bool((dist2[:, 0] == 0).all()) and bool((dist2[:, 1:] >= dist2[:, :-1]).all())


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_reference(dtype):
    query, points, qb, pb = random_sets(700, 2000, 3, dtype, seed=5)
    for max_neighbors in (None, 3):
        out = radius_query(query.cuda(), points.cuda(), 0.1, qb.cuda(), pb.cuda(), max_neighbors)
        ref = radius_query_reference(query, points, 0.1, qb, pb, max_neighbors)
        assert torch.equal(out[0].cpu(), ref[0]) and torch.equal(out[1].cpu(), ref[1])
    out = knn_query(query.cuda(), points.cuda(), 7, qb.cuda(), pb.cuda())
    ref = knn_query_reference(query, points, 7, qb, pb)
    assert torch.equal(out[0].cpu(), ref[0]) and torch.equal(out[1].cpu(), ref[1])


BAD = [
    (dict(query=torch.tensor([[0.0, float("nan"), 0]])), ValueError, "query contains NaN or inf"),
    (dict(points=torch.tensor([[float("inf"), 0.0, 0]])), ValueError, "points contains NaN or inf"),
    (dict(points=torch.zeros(2, 3, dtype=torch.float64)), ValueError, "points must have query's dtype"),
    (dict(query=torch.zeros(2, 3, dtype=torch.int64)), ValueError, "query must be float32 or float64"),
    (dict(query=torch.zeros(2, 4)), ValueError, r"query must have shape \(N, 3\)"),
    (dict(query_batch=torch.zeros(3, dtype=torch.int64)), ValueError, r"query_batch must have shape \(2,\)"),
    (dict(point_batch=torch.zeros(4)), ValueError, "point_batch must be int64"),
    (dict(point_batch=torch.tensor([0, -1, 0, 0])), ValueError, "point_batch must be >= 0"),
]


@pytest.mark.parametrize("fn", [radius_query, radius_query_reference])
@pytest.mark.parametrize("change, error, match", BAD + [
    (dict(radius=0.0), ValueError, "radius must be finite and > 0"),
    (dict(radius=-1.0), ValueError, "radius must be finite and > 0"),
    (dict(radius=float("nan")), ValueError, "radius must be finite and > 0"),
    (dict(max_neighbors=0), ValueError, "max_neighbors must be >= 1"),
])
def test_radius_bad_input(fn, change, error, match):
    args = dict(query=torch.zeros(2, 3), points=torch.zeros(4, 3), radius=0.1, query_batch=None, point_batch=None)
    args.update(change)
    with pytest.raises(error, match=match):
        fn(**args)


@pytest.mark.parametrize("fn", [knn_query, knn_query_reference])
@pytest.mark.parametrize("change, error, match", BAD + [
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(k=2.0), TypeError, "k must be an int"),
])
def test_knn_bad_input(fn, change, error, match):
    args = dict(query=torch.zeros(2, 3), points=torch.zeros(4, 3), k=2, query_batch=None, point_batch=None)
    args.update(change)
    with pytest.raises(error, match=match):
        fn(**args)
