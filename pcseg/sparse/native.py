"""Native sparse convolution: kernel map -> gather -> GEMM -> scatter in torch. Exact and deterministic.

Two equivalent evaluation strategies, picked per direction by how full the kernel map is:
- dense ("im2col"): a (rows, K) neighbour table (missing neighbours point at an appended zero row); rows are
  gathered in chunks into (chunk, K * C_in) and multiplied by the (K * C_in, C_out) weight in one GEMM. No scatter,
  so nothing is accumulated out of order.
- pairs: per kernel offset gather the inputs, multiply by W[k], and `index_add_` into the outputs. Within one offset
  every output row appears at most once, and offsets run in order, so this is deterministic on CPU and CUDA.
The dense strategy wastes GEMM work on missing neighbours; it is used where at least `DENSE_FILL` of the table is
occupied (submanifold maps of real scenes), the pairs strategy elsewhere (strided maps seen from the fine side).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

from pcseg.ops.kernel_map import KernelMap

DENSE_FILL = 0.25
CHUNK_BYTES = 16 * 2**20


class ConvPlan:
    """A KernelMap prepared for evaluation; neighbour tables are built on first use and kept.

    kmap    KernelMap (in -> out)
    center  offset k whose pairs are exactly (i, i) for every row (submanifold, odd kernel), or -1
    """

    def __init__(
        self, kmap: KernelMap, center: int = -1, _tables: Optional[Dict[bool, torch.Tensor]] = None, _swapped=False
    ) -> None:
        self.kmap = kmap
        self.center = center
        starts = [0]
        for c in kmap.counts.tolist():
            starts.append(starts[-1] + int(c))
        self.starts: List[int] = starts
        self._tables = {} if _tables is None else _tables  # shared with the transposed plan
        self._swapped = _swapped

    @property
    def kernel_volume(self) -> int:
        return self.kmap.kernel_volume

    def rows(self, transposed: bool) -> int:
        """Number of destination rows: outputs, or inputs for the transposed direction."""
        return self.kmap.num_in if transposed else self.kmap.num_out

    def fill(self, transposed: bool) -> float:
        """Fraction of the (rows, K) neighbour table that holds a pair."""
        slots = self.rows(transposed) * self.kernel_volume
        return self.starts[-1] / slots if slots else 1.0

    def pairs(self, k: int, transposed: bool):
        """(src_idx, dst_idx) of kernel offset k."""
        s, e = self.starts[k], self.starts[k + 1]
        src, dst = self.kmap.in_idx[s:e], self.kmap.out_idx[s:e]
        return (dst, src) if transposed else (src, dst)

    def table(self, transposed: bool) -> torch.Tensor:
        """(rows, K) int64: source row feeding destination row r through offset k; the source count where none."""
        key = transposed != self._swapped
        if key not in self._tables:
            kmap = self.kmap
            src, dst = (kmap.out_idx, kmap.in_idx) if transposed else (kmap.in_idx, kmap.out_idx)
            sentinel = kmap.num_out if transposed else kmap.num_in
            k_of = torch.repeat_interleave(
                torch.arange(self.kernel_volume, device=src.device), kmap.counts.to(src.device)
            )
            table = torch.full((self.rows(transposed), self.kernel_volume), sentinel, dtype=torch.long, device=src.device)
            table[dst, k_of] = src
            self._tables[key] = table
        return self._tables[key]

    def transpose(self) -> "ConvPlan":
        """Plan of the transposed convolution (inverse conv), sharing the neighbour tables."""
        return ConvPlan(self.kmap.transpose(), self.center, self._tables, not self._swapped)


def _chunk_rows(row_elems: int, element_size: int) -> int:
    return max(1, CHUNK_BYTES // max(1, row_elems * element_size))


def _use_dense(plan: ConvPlan, transposed: bool, dense_fill: Optional[float]) -> bool:
    return plan.fill(transposed) >= (DENSE_FILL if dense_fill is None else dense_fill)


def _padded(src: torch.Tensor) -> torch.Tensor:
    return torch.cat([src, src.new_zeros(1, src.shape[1])])


def _apply(src: torch.Tensor, weight: torch.Tensor, plan: ConvPlan, transposed: bool, dense_fill) -> torch.Tensor:
    """dst[d] = sum over pairs (s -> d, offset k) of src[s] @ weight[k].   src (S, Ci), weight (K, Ci, Co) -> (D, Co)"""
    rows, (num_k, c_in, c_out) = plan.rows(transposed), weight.shape
    if _use_dense(plan, transposed, dense_fill):
        table = plan.table(transposed)
        srcp = _padded(src)
        flat = weight.reshape(num_k * c_in, c_out)
        out = src.new_empty(rows, c_out)
        step = _chunk_rows(num_k * c_in, src.element_size())
        for s in range(0, rows, step):
            cols = srcp.index_select(0, table[s : s + step].reshape(-1)).view(-1, num_k * c_in)
            torch.mm(cols, flat, out=out[s : s + step])
        return out
    if plan.center >= 0:
        out = src.mm(weight[plan.center])
    else:
        out = src.new_zeros(rows, c_out)
    for k in range(num_k):
        s_idx, d_idx = plan.pairs(k, transposed)
        if k != plan.center and s_idx.numel():
            out.index_add_(0, d_idx, src.index_select(0, s_idx).mm(weight[k]))
    return out


def _weight_grad(feats: torch.Tensor, grad_out: torch.Tensor, plan: ConvPlan, dense_fill) -> torch.Tensor:
    """(K, Ci, Co) gradient of the weight: sum over pairs (i -> o, k) of feats[i]^T grad_out[o]."""
    num_k, c_in, c_out = plan.kernel_volume, feats.shape[1], grad_out.shape[1]
    if _use_dense(plan, False, dense_fill):
        table = plan.table(False)
        srcp = _padded(feats)
        grad = feats.new_zeros(num_k * c_in, c_out)
        step = _chunk_rows(num_k * c_in, feats.element_size())
        for s in range(0, plan.rows(False), step):
            cols = srcp.index_select(0, table[s : s + step].reshape(-1)).view(-1, num_k * c_in)
            grad.addmm_(cols.t(), grad_out[s : s + step])
        return grad.view(num_k, c_in, c_out)
    grad = feats.new_zeros(num_k, c_in, c_out)
    for k in range(num_k):
        s_idx, d_idx = plan.pairs(k, False)
        if s_idx.numel():
            torch.mm(feats.index_select(0, s_idx).t(), grad_out.index_select(0, d_idx), out=grad[k])
    return grad


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, plan, dense_fill):
        ctx.plan, ctx.dense_fill = plan, dense_fill
        ctx.save_for_backward(feats, weight)
        return _apply(feats, weight, plan, False, dense_fill)

    @staticmethod
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = _apply(grad_out, weight.transpose(1, 2), ctx.plan, True, ctx.dense_fill)
        if ctx.needs_input_grad[1]:
            grad_weight = _weight_grad(feats, grad_out, ctx.plan, ctx.dense_fill)
        return grad_feats, grad_weight, None, None


def sparse_conv(
    feats: torch.Tensor, weight: torch.Tensor, plan: ConvPlan, dense_fill: Optional[float] = None
) -> torch.Tensor:
    """Sparse convolution along a plan: out[o] = sum over pairs (i -> o, offset k) of feats[i] @ weight[k].

    feats       (N_in, C_in) float, contiguous rows of the plan's inputs
    weight      (K, C_in, C_out) same dtype
    dense_fill  table fill from which the dense strategy is used (default DENSE_FILL; 0 forces dense, > 1 pairs)
    returns     (N_out, C_out)
    """
    return _SparseConvFunction.apply(feats.contiguous(), weight, plan, dense_fill)


def _depthwise_apply(src, weight, plan: ConvPlan, transposed: bool, dense_fill) -> torch.Tensor:
    """dst[d] = sum over pairs (s -> d, k) of src[s] * weight[k].   src (S, C), weight (K, C) -> (D, C)"""
    rows, num_k = plan.rows(transposed), weight.shape[0]
    if _use_dense(plan, transposed, dense_fill):
        table = plan.table(transposed)
        srcp = _padded(src)
        out = src.new_empty(rows, src.shape[1])
        step = _chunk_rows(num_k * src.shape[1], src.element_size())
        for s in range(0, rows, step):
            cols = srcp.index_select(0, table[s : s + step].reshape(-1)).view(-1, num_k, src.shape[1])
            torch.sum(cols.mul_(weight), 1, out=out[s : s + step])
        return out
    out = src * weight[plan.center] if plan.center >= 0 else src.new_zeros(rows, src.shape[1])
    for k in range(num_k):
        s_idx, d_idx = plan.pairs(k, transposed)
        if k != plan.center and s_idx.numel():
            out.index_add_(0, d_idx, src.index_select(0, s_idx) * weight[k])
    return out


class _DepthwiseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, weight, plan, dense_fill):
        ctx.plan, ctx.dense_fill = plan, dense_fill
        ctx.save_for_backward(feats, weight)
        return _depthwise_apply(feats, weight, plan, False, dense_fill)

    @staticmethod
    def backward(ctx, grad_out):
        feats, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        plan = ctx.plan
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = _depthwise_apply(grad_out, weight, plan, True, ctx.dense_fill)
        if ctx.needs_input_grad[1]:
            grad_weight = weight.new_zeros(weight.shape)
            for k in range(plan.kernel_volume):
                s_idx, d_idx = plan.pairs(k, False)
                if s_idx.numel():
                    grad_weight[k] = (feats.index_select(0, s_idx) * grad_out.index_select(0, d_idx)).sum(0)
        return grad_feats, grad_weight, None, None


def depthwise_conv(
    feats: torch.Tensor, weight: torch.Tensor, plan: ConvPlan, dense_fill: Optional[float] = None
) -> torch.Tensor:
    """Depthwise sparse convolution: out[o] = sum over pairs (i -> o, offset k) of feats[i] * weight[k].

    feats   (N_in, C) float
    weight  (K, C) same dtype, one kernel per channel
    returns (N_out, C)
    """
    return _DepthwiseConvFunction.apply(feats.contiguous(), weight, plan, dense_fill)
