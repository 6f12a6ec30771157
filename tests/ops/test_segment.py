import pytest
import torch

from pcseg.ops._ext import has_op
from pcseg.ops.segment import (
    segment_argmax,
    segment_max,
    segment_max_reference,
    segment_mean,
    segment_reduce,
    segment_reduce_reference,
    segment_sum,
)

needs_kernel = pytest.mark.skipif(not has_op("segment", "cpu"), reason="pcseg._C is not built")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def kernel_or_reference(reduce):
    return [
        pytest.param(lambda s, i, n: segment_reduce_reference(s, i, n, reduce), id="reference"),
        pytest.param(lambda s, i, n: segment_reduce(s, i, n, reduce), id="kernel", marks=needs_kernel),
    ]


SRC = torch.tensor([[1.0, -2.0], [3.0, 5.0], [3.0, -1.0], [-4.0, 0.5]])
INDEX = torch.tensor([2, 0, 2, 2])


@pytest.mark.parametrize("impl", kernel_or_reference("sum"))
def test_literal_sum(impl):
    assert impl(SRC, INDEX, 4).tolist() == [[3.0, 5.0], [0.0, 0.0], [0.0, -2.5], [0.0, 0.0]]


@pytest.mark.parametrize("impl", kernel_or_reference("mean"))
def test_literal_mean(impl):
    torch.testing.assert_close(impl(SRC, INDEX, 3), torch.tensor([[3.0, 5.0], [0.0, 0.0], [0.0, -2.5 / 3]]))


@pytest.mark.parametrize("impl", kernel_or_reference("max"))
def test_literal_max_and_gradient_to_argmax(impl):
    src = SRC.clone().requires_grad_(True)
    out = impl(src, INDEX, 3)
    assert out.tolist() == [[3.0, 5.0], [0.0, 0.0], [3.0, 0.5]]
    out.backward(torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]))
    # segment 2 holds rows 0, 2, 3: channel 0 peaks at row 2, channel 1 at row 3; segment 1 is empty
    assert src.grad.tolist() == [[0.0, 0.0], [10.0, 20.0], [50.0, 0.0], [0.0, 60.0]]


@pytest.mark.parametrize("argmax", [
    pytest.param(lambda s, i, n: segment_max_reference(s, i, n)[1], id="reference"),
    pytest.param(segment_argmax, id="kernel", marks=needs_kernel),
])
def test_literal_argmax_ties_and_empty(argmax):
    src = torch.tensor([[2.0], [7.0], [7.0], [1.0], [7.0]])
    index = torch.tensor([1, 1, 1, 0, 1])
    assert argmax(src, index, 3).tolist() == [[3], [1], [-1]]


@pytest.mark.parametrize("impl", kernel_or_reference("max"))
def test_max_gradient_goes_to_lowest_tied_row(impl):
    src = torch.tensor([[2.0], [7.0], [7.0], [1.0], [7.0]], requires_grad=True)
    impl(src, torch.tensor([1, 1, 1, 0, 1]), 2).sum().backward()
    assert src.grad.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("impl", kernel_or_reference("max"))
def test_max_propagates_nan(impl):
    src = torch.tensor([[1.0], [float("nan")], [5.0]])
    out = impl(src, torch.tensor([0, 0, 0]), 1)
    assert torch.isnan(out).all()


def random_case(n, c, s, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(n, c, generator=g, dtype=torch.float64).to(dtype)
    index = torch.randint(0, max(s, 1), (n,), generator=g) if s else torch.zeros(0, dtype=torch.int64)
    return src, index


@needs_kernel
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("n, c, s", [(0, 3, 0), (0, 3, 5), (1, 1, 1), (1, 4, 3), (100, 1, 10), (5000, 16, 300),
                                     (20000, 3, 20000)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_reference(reduce, n, c, s, dtype):
    src, index = random_case(n, c, s, dtype, seed=n + c + s)
    if n == 0:
        index = torch.zeros(0, dtype=torch.int64)
    out = segment_reduce(src, index, s, reduce)
    ref = segment_reduce_reference(src, index, s, reduce)
    assert out.shape == (s, c) and out.dtype == dtype
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    if reduce == "max":
        assert torch.equal(segment_argmax(src, index, s), segment_max_reference(src, index, s)[1])


@needs_kernel
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_kernel_gradients_match_reference(reduce):
    src, index = random_case(3000, 5, 200, torch.float32, seed=4)
    src[::7] = src[3::7][: len(src[::7])]  # some ties for max (rows in different segments mostly)
    grad = torch.randn(200, 5, generator=torch.Generator().manual_seed(5))
    a = src.clone().requires_grad_(True)
    b = src.clone().requires_grad_(True)
    segment_reduce(a, index, 200, reduce).backward(grad)
    segment_reduce_reference(b, index, 200, reduce).backward(grad)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_gradcheck(reduce, impl):
    if impl == "kernel" and not has_op("segment", "cpu"):
        pytest.skip("pcseg._C is not built")
    fn = segment_reduce if impl == "kernel" else segment_reduce_reference
    g = torch.Generator().manual_seed(0)
    src = torch.randn(40, 3, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (40,), generator=g)
    assert torch.autograd.gradcheck(lambda x: fn(x, index, 10, reduce), (src,))


@needs_kernel
def test_kernel_deterministic_across_threads():
    src, index = random_case(50000, 8, 1000, torch.float32, seed=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = segment_sum(src, index, 1000)
        torch.set_num_threads(2)
        two = segment_sum(src, index, 1000)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


@needs_kernel
def test_half_precision_is_reduced_in_float():
    src = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float16, requires_grad=True)
    out = segment_mean(src, torch.tensor([0, 0, 1]), 2)
    assert out.dtype == torch.float16 and out.tolist() == [[1.5], [4.0]]
    out.sum().backward()
    assert src.grad.tolist() == [[0.5], [0.5], [1.0]]


@needs_cuda
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_cuda_matches_reference(reduce):
    src, index = random_case(5000, 8, 300, torch.float32, seed=3)
    a = src.cuda().requires_grad_(True)
    out = segment_reduce(a, index.cuda(), 300, reduce)
    torch.testing.assert_close(out.cpu(), segment_reduce_reference(src, index, 300, reduce), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    b = src.clone().requires_grad_(True)
    segment_reduce_reference(b, index, 300, reduce).sum().backward()
    torch.testing.assert_close(a.grad.cpu(), b.grad)


@pytest.mark.parametrize("fn", [segment_sum, segment_max, lambda s, i, n: segment_reduce_reference(s, i, n, "sum")])
@pytest.mark.parametrize(
    "src, index, num_segments, error, match",
    [
        (torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), 1, ValueError, "floating-point"),
        (torch.zeros(3), torch.zeros(3, dtype=torch.int64), 1, ValueError, r"src must have shape \(N, C\)"),
        (torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), 1, ValueError, r"index must have shape \(3,\)"),
        (torch.zeros(3, 2), torch.zeros(3, dtype=torch.int32), 1, ValueError, "index must be int64"),
        (torch.zeros(3, 2), torch.tensor([0, 1, 2]), 2, ValueError, "index must be < 2"),
        (torch.zeros(3, 2), torch.tensor([0, -1, 0]), 2, ValueError, "index must be >= 0"),
        (torch.zeros(3, 2), torch.tensor([0, 0, 0]), -1, ValueError, "num_segments must be an int >= 0"),
        ("not a tensor", torch.tensor([0]), 1, TypeError, "src must be a torch.Tensor"),
    ],
)
def test_bad_input(fn, src, index, num_segments, error, match):
    with pytest.raises(error, match=match):
        fn(src, index, num_segments)


def test_unknown_reduction():
    with pytest.raises(ValueError, match="reduce must be one of"):
        segment_reduce(torch.zeros(2, 1), torch.zeros(2, dtype=torch.int64), 1, "median")
