"""Segment reductions (sum, mean, max) with gradients: pool rows of `src` that share a segment index.

    out = segment_mean(feat, inverse, num_voxels)      # feat (N, C), inverse (N,) int64 -> out (S, C)

`index` may come in any order; empty segments give 0. The kernels reduce every segment in increasing row order
on one thread, so results are deterministic (the torch references may round sums differently in the last bits).
segment_max sends the gradient of each output to its argmax row, the lowest row on ties. NaN propagates.
float16 / bfloat16 inputs are reduced in float32 by the kernels and cast back.
"""
from __future__ import annotations

from typing import Tuple

import torch

from pcseg.ops._ext import check_index, check_tensor, extension, has_op, warn_fallback

REDUCTIONS = ("sum", "mean", "max")


def _check(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
    src = check_tensor("segment", "src", src)
    if src.dim() != 2:
        raise ValueError(f"segment: src must have shape (N, C), got {tuple(src.shape)}")
    if not src.dtype.is_floating_point:
        raise ValueError(f"segment: src must be a floating-point tensor, got {src.dtype}")
    if isinstance(num_segments, bool) or not isinstance(num_segments, int) or num_segments < 0:
        raise ValueError(f"segment: num_segments must be an int >= 0, got {num_segments!r}")
    index = check_index("segment", "index", index, src.shape[0], src.device, upper=num_segments)
    return src, index, num_segments


def _kernel_dtype(src: torch.Tensor) -> torch.Tensor:
    return src if src.dtype in (torch.float32, torch.float64) else src.float()


class _SegmentSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
        ctx.save_for_backward(index)
        out = extension().segment_sum(_kernel_dtype(src).contiguous(), index, num_segments)
        return out.to(src.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (index,) = ctx.saved_tensors
        return grad_out.index_select(0, index), None, None


class _SegmentMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
        out, arg = extension().segment_max(_kernel_dtype(src).contiguous(), index, num_segments)
        ctx.save_for_backward(arg)
        ctx.num_rows = src.shape[0]
        return out.to(src.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (arg,) = ctx.saved_tensors
        seg, chan = torch.nonzero(arg >= 0, as_tuple=True)
        grad_src = grad_out.new_zeros(ctx.num_rows, grad_out.shape[1])
        grad_src = grad_src.index_put((arg[seg, chan], chan), grad_out[seg, chan])
        return grad_src, None, None


# ---- references: plain torch, differentiable through torch's own autograd ----


def _sum_reference(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    return src.new_zeros(num_segments, src.shape[1]).index_add(0, index, src)


def segment_max_reference(src: torch.Tensor, index: torch.Tensor, num_segments: int
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
    """((S, C) max, (S, C) int64 argmax, -1 where empty): amax by scatter_reduce, then the lowest row that
    attains it; the output is gathered from that row, so the gradient flows to it alone."""
    src, index, num_segments = _check(src, index, num_segments)
    n, channels = src.shape
    if n == 0:
        return src.new_zeros(num_segments, channels), index.new_full((num_segments, channels), -1)
    target = index[:, None].expand(n, channels)
    with torch.no_grad():
        amax = src.new_zeros(num_segments, channels).scatter_reduce(0, target, src, "amax", include_self=False)
        at_row = amax[index]
        hit = (src == at_row) | (torch.isnan(src) & torch.isnan(at_row))
        rows = torch.arange(n, device=src.device)[:, None].expand(n, channels)
        first = torch.where(hit, rows, n)
        arg = index.new_full((num_segments, channels), n).scatter_reduce(0, target, first, "amin", include_self=True)
    found = arg < n
    out = torch.where(found, src.gather(0, arg.clamp(max=n - 1)), src.new_zeros(()))
    return out, torch.where(found, arg, -1)


def segment_reduce_reference(src: torch.Tensor, index: torch.Tensor, num_segments: int, reduce: str
                             ) -> torch.Tensor:
    """Pure-torch `segment_reduce` (the oracle of the tests)."""
    src, index, num_segments = _check(src, index, num_segments)
    if reduce == "sum":
        return _sum_reference(src, index, num_segments)
    if reduce == "mean":
        counts = torch.bincount(index, minlength=num_segments).clamp(min=1)
        return _sum_reference(src, index, num_segments) / counts[:, None].to(src.dtype)
    if reduce == "max":
        return segment_max_reference(src, index, num_segments)[0]
    raise ValueError(f"segment: reduce must be one of {REDUCTIONS}, got {reduce!r}")


def segment_reduce(src: torch.Tensor, index: torch.Tensor, num_segments: int, reduce: str) -> torch.Tensor:
    """(S, C) reduction `reduce` ("sum", "mean" or "max") of the rows of `src` (N, C) float per segment.

    index (N,) int64 in [0, num_segments), any order, on src's device. Empty segments give 0. Differentiable in
    src. Raises ValueError for a non-float src, an index of another dtype, length or device, out-of-range
    indices and an unknown `reduce`.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"segment: reduce must be one of {REDUCTIONS}, got {reduce!r}")
    src, index, num_segments = _check(src, index, num_segments)
    if not has_op("segment", src.device):
        warn_fallback("segment", src.device)
        return segment_reduce_reference(src, index, num_segments, reduce)
    if reduce == "max":
        return _SegmentMax.apply(src, index, num_segments)
    out = _SegmentSum.apply(src, index, num_segments)
    if reduce == "mean":
        counts = torch.bincount(index, minlength=num_segments).clamp(min=1)
        out = out / counts[:, None].to(out.dtype)
    return out


def segment_sum(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(S, C) per-segment sums of `src` (N, C); see `segment_reduce`."""
    return segment_reduce(src, index, num_segments, "sum")


def segment_mean(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(S, C) per-segment means of `src` (N, C) (0 for empty segments); see `segment_reduce`."""
    return segment_reduce(src, index, num_segments, "mean")


def segment_max(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(S, C) per-segment maxima of `src` (N, C); the gradient goes to the argmax row (lowest on ties)."""
    return segment_reduce(src, index, num_segments, "max")


def segment_argmax(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(S, C) int64 row of each segment maximum of `src` (N, C): lowest row on ties, -1 for empty segments."""
    src, index, num_segments = _check(src, index, num_segments)
    if has_op("segment", src.device):
        return extension().segment_max(_kernel_dtype(src).detach().contiguous(), index, num_segments)[1]
    warn_fallback("segment", src.device)
    return segment_max_reference(src.detach(), index, num_segments)[1]


__all__ = [
    "REDUCTIONS",
    "segment_argmax",
    "segment_max",
    "segment_max_reference",
    "segment_mean",
    "segment_reduce",
    "segment_reduce_reference",
    "segment_sum",
]
