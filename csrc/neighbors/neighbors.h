// Radius and k-nearest-neighbour queries between two point sets, within each batch element.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace pcseg {

// query        (Q, 3) float32/float64, finite
// points       (P, 3) same dtype and device, finite
// query_batch  (Q,) int64 >= 0 or nullopt; point_batch (P,) int64 >= 0 or nullopt (nullopt: all in element 0)
// Distances are squared Euclidean, computed as dx*dx + dy*dy + dz*dz in the input dtype with no fused
// multiply-add, so every device and the torch reference agree bit for bit; neighbours of a query are ordered
// by (squared distance, point index).
//
// radius_query: radius > 0, max_neighbors > 0 or -1 (no limit).
//   returns (query_idx (E,) int64, point_idx (E,) int64): all pairs with d2 <= radius * radius (radius rounded
//   to the dtype first), at most max_neighbors nearest per query, sorted by query then (d2, point index).
// knn_query: k >= 1.
//   returns (index (Q, k) int64, dist2 (Q, k)): the k nearest points of each query, -1 and +inf where the
//   query's batch element has fewer than k points.
std::tuple<at::Tensor, at::Tensor> radius_query_cpu(const at::Tensor& query, const at::Tensor& points, double radius,
                                                    const std::optional<at::Tensor>& query_batch,
                                                    const std::optional<at::Tensor>& point_batch,
                                                    int64_t max_neighbors);
std::tuple<at::Tensor, at::Tensor> knn_query_cpu(const at::Tensor& query, const at::Tensor& points, int64_t k,
                                                 const std::optional<at::Tensor>& query_batch,
                                                 const std::optional<at::Tensor>& point_batch);
#ifdef WITH_CUDA
std::tuple<at::Tensor, at::Tensor> radius_query_cuda(const at::Tensor& query, const at::Tensor& points, double radius,
                                                     const std::optional<at::Tensor>& query_batch,
                                                     const std::optional<at::Tensor>& point_batch,
                                                     int64_t max_neighbors);
std::tuple<at::Tensor, at::Tensor> knn_query_cuda(const at::Tensor& query, const at::Tensor& points, int64_t k,
                                                  const std::optional<at::Tensor>& query_batch,
                                                  const std::optional<at::Tensor>& point_batch);
#endif

inline void neighbors_check(const at::Tensor& query, const at::Tensor& points,
                            const std::optional<at::Tensor>& query_batch,
                            const std::optional<at::Tensor>& point_batch) {
  TORCH_CHECK(query.dim() == 2 && query.size(1) == 3 && points.dim() == 2 && points.size(1) == 3,
              "neighbors: query and points must be (Q, 3) and (P, 3)");
  TORCH_CHECK(query.scalar_type() == points.scalar_type() && query.device() == points.device(),
              "neighbors: query and points must share dtype and device");
  TORCH_CHECK(!query_batch || (query_batch->dim() == 1 && query_batch->size(0) == query.size(0) &&
                               query_batch->scalar_type() == at::kLong && query_batch->device() == query.device()),
              "neighbors: query_batch must be (Q,) int64 on query's device");
  TORCH_CHECK(!point_batch || (point_batch->dim() == 1 && point_batch->size(0) == points.size(0) &&
                               point_batch->scalar_type() == at::kLong && point_batch->device() == points.device()),
              "neighbors: point_batch must be (P,) int64 on points' device");
}

inline std::tuple<at::Tensor, at::Tensor> radius_query(const at::Tensor& query, const at::Tensor& points,
                                                       double radius, const std::optional<at::Tensor>& query_batch,
                                                       const std::optional<at::Tensor>& point_batch,
                                                       int64_t max_neighbors) {
  neighbors_check(query, points, query_batch, point_batch);
  TORCH_CHECK(radius > 0, "radius_query: radius must be > 0");
  TORCH_CHECK(max_neighbors > 0 || max_neighbors == -1, "radius_query: max_neighbors must be > 0 or -1");
  if (query.is_cuda()) {
#ifdef WITH_CUDA
    return radius_query_cuda(query, points, radius, query_batch, point_batch, max_neighbors);
#else
    TORCH_CHECK(false, "radius_query: pcseg._C was built without CUDA");
#endif
  }
  return radius_query_cpu(query, points, radius, query_batch, point_batch, max_neighbors);
}

inline std::tuple<at::Tensor, at::Tensor> knn_query(const at::Tensor& query, const at::Tensor& points, int64_t k,
                                                    const std::optional<at::Tensor>& query_batch,
                                                    const std::optional<at::Tensor>& point_batch) {
  neighbors_check(query, points, query_batch, point_batch);
  TORCH_CHECK(k >= 1, "knn_query: k must be >= 1");
  if (query.is_cuda()) {
#ifdef WITH_CUDA
    return knn_query_cuda(query, points, k, query_batch, point_batch);
#else
    TORCH_CHECK(false, "knn_query: pcseg._C was built without CUDA");
#endif
  }
  return knn_query_cpu(query, points, k, query_batch, point_batch);
}

}  // namespace pcseg
