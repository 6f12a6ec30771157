// CUDA neighbour-search launchers: points sorted by batch element (stable, so increasing index inside an
// element), brute-force scan of the query's element per thread (neighbors_kernels.cuh); radius pairs are
// ordered by (query, d2, point) with two stable torch sorts and cut to max_neighbors per query.
#include "neighbors/neighbors.h"
#include "neighbors/neighbors_kernels.cuh"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <limits>

namespace pcseg {
namespace {

struct SortedPoints {
  at::Tensor points;  // (P, 3) sorted by batch element
  at::Tensor index;   // (P,) original row of each sorted point
  at::Tensor start;   // (B + 1,) element b owns sorted rows start[b] .. start[b + 1]
  int64_t nb;
};

SortedPoints sort_points(const at::Tensor& points, const at::Tensor& point_batch, int64_t nb) {
  const auto lopt = points.options().dtype(at::kLong);
  at::Tensor start = points.new_zeros({nb + 1}, lopt);
  if (!point_batch.defined()) {
    start.narrow(0, 1, nb).fill_(points.size(0));
    return {points, points.new_empty({0}, lopt), start, nb};
  }
  const at::Tensor index = point_batch.argsort(/*stable=*/true, 0, false);
  start.narrow(0, 1, nb).copy_(point_batch.bincount({}, nb).cumsum(0));
  return {points.index_select(0, index).contiguous(), index, start, nb};
}

int64_t num_batches(const at::Tensor& query_batch, const at::Tensor& point_batch) {
  int64_t nb = 1;
  if (query_batch.defined() && query_batch.numel()) nb = std::max(nb, query_batch.max().item<int64_t>() + 1);
  if (point_batch.defined() && point_batch.numel()) nb = std::max(nb, point_batch.max().item<int64_t>() + 1);
  return nb;
}

unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535)));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> radius_query_cuda(const at::Tensor& query_in, const at::Tensor& points_in,
                                                     double radius, const std::optional<at::Tensor>& query_batch,
                                                     const std::optional<at::Tensor>& point_batch,
                                                     int64_t max_neighbors) {
  const c10::cuda::CUDAGuard guard(query_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor query = query_in.contiguous();
  const at::Tensor qb = query_batch ? query_batch->contiguous() : at::Tensor();
  const at::Tensor pb = point_batch ? point_batch->contiguous() : at::Tensor();
  const int64_t nq = query.size(0);
  const auto lopt = query.options().dtype(at::kLong);
  if (nq == 0 || points_in.size(0) == 0) return {query.new_empty({0}, lopt), query.new_empty({0}, lopt)};
  const SortedPoints sp = sort_points(points_in.contiguous(), pb, num_batches(qb, pb));
  // Without a point batch the sorted order is the identity: map through an explicit arange then.
  at::Tensor sorted_index = sp.index;
  if (!pb.defined()) sorted_index = query.new_ones({points_in.size(0)}, lopt).cumsum(0).sub(1);
  const int64_t* qbp = qb.defined() ? qb.data_ptr<int64_t>() : nullptr;

  at::Tensor count = query.new_empty({nq}, lopt);
  at::Tensor query_idx, point_idx;
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "radius_query_cuda", [&] {
    const scalar_t r = static_cast<scalar_t>(radius);
    const scalar_t r2 = r * r;
    radius_count_kernel<scalar_t><<<blocks_for(nq), 256, 0, stream>>>(
        query.data_ptr<scalar_t>(), qbp, nq, sp.points.data_ptr<scalar_t>(), sp.start.data_ptr<int64_t>(), sp.nb,
        r2, count.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const at::Tensor end = count.cumsum(0);
    const int64_t total = end[nq - 1].item<int64_t>();
    const at::Tensor offset = end.sub(count);
    query_idx = query.new_empty({total}, lopt);
    point_idx = query.new_empty({total}, lopt);
    at::Tensor d2 = query.new_empty({total});
    if (total == 0) return;
    radius_fill_kernel<scalar_t><<<blocks_for(nq), 256, 0, stream>>>(
        query.data_ptr<scalar_t>(), qbp, nq, sp.points.data_ptr<scalar_t>(), sorted_index.data_ptr<int64_t>(),
        sp.start.data_ptr<int64_t>(), sp.nb, r2, offset.data_ptr<int64_t>(), query_idx.data_ptr<int64_t>(),
        point_idx.data_ptr<int64_t>(), d2.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // Pairs are grouped by query in increasing point index: a stable sort by d2, then a stable sort by query.
    const at::Tensor by_d2 = d2.argsort(/*stable=*/true, 0, false);
    const at::Tensor by_query = query_idx.index_select(0, by_d2).argsort(/*stable=*/true, 0, false);
    const at::Tensor order = by_d2.index_select(0, by_query);
    query_idx = query_idx.index_select(0, order);
    point_idx = point_idx.index_select(0, order);
    if (max_neighbors > 0) {
      const at::Tensor rank = query_idx.new_ones({total}).cumsum(0).sub(1).sub(offset.index_select(0, query_idx));
      const at::Tensor keep = rank.lt(max_neighbors).nonzero().view({-1});
      query_idx = query_idx.index_select(0, keep);
      point_idx = point_idx.index_select(0, keep);
    }
  });
  return {query_idx, point_idx};
}

std::tuple<at::Tensor, at::Tensor> knn_query_cuda(const at::Tensor& query_in, const at::Tensor& points_in, int64_t k,
                                                  const std::optional<at::Tensor>& query_batch,
                                                  const std::optional<at::Tensor>& point_batch) {
  const c10::cuda::CUDAGuard guard(query_in.device());
  const at::Tensor query = query_in.contiguous();
  const at::Tensor qb = query_batch ? query_batch->contiguous() : at::Tensor();
  const at::Tensor pb = point_batch ? point_batch->contiguous() : at::Tensor();
  const int64_t nq = query.size(0);
  const auto lopt = query.options().dtype(at::kLong);
  at::Tensor index = query.new_full({nq, k}, -1, lopt);
  at::Tensor dist2 = query.new_full({nq, k}, std::numeric_limits<double>::infinity());
  if (nq == 0 || points_in.size(0) == 0) return {index, dist2};
  const SortedPoints sp = sort_points(points_in.contiguous(), pb, num_batches(qb, pb));
  at::Tensor sorted_index = sp.index;
  if (!pb.defined()) sorted_index = query.new_ones({points_in.size(0)}, lopt).cumsum(0).sub(1);
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_query_cuda", [&] {
    knn_kernel<scalar_t><<<blocks_for(nq), 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
        query.data_ptr<scalar_t>(), qb.defined() ? qb.data_ptr<int64_t>() : nullptr, nq,
        sp.points.data_ptr<scalar_t>(), sorted_index.data_ptr<int64_t>(), sp.start.data_ptr<int64_t>(), sp.nb, k,
        std::numeric_limits<scalar_t>::infinity(), index.data_ptr<int64_t>(), dist2.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {index, dist2};
}

}  // namespace pcseg
