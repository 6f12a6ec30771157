// Region partition (CPCM): each batch element split into G^3 cells at per-axis coordinate quantiles.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace pcseg {

// coord      (N, 3) float32/float64, finite
// grid_size  G >= 1
// batch      (N,) int64 >= 0 on coord's device, or nullopt (one point cloud)
// returns    (N,) int64 cell id b * G^3 + ix * G^2 + iy * G + iz, where along each axis of batch element b
//            (n_b points, values v sorted ascending) the pivots are p_j = v[floor(j * n_b / G)], j = 1..G-1, and
//            ix = #{j : p_j <= x}. Equal coordinates share a cell; distinct ones split into balanced cells.
at::Tensor region_partition_cpu(const at::Tensor& coord, int64_t grid_size, const std::optional<at::Tensor>& batch);
#ifdef WITH_CUDA
at::Tensor region_partition_cuda(const at::Tensor& coord, int64_t grid_size, const std::optional<at::Tensor>& batch);
#endif

inline at::Tensor region_partition(const at::Tensor& coord, int64_t grid_size, const std::optional<at::Tensor>& batch) {
  TORCH_CHECK(coord.dim() == 2 && coord.size(1) == 3, "region_partition: coord must be (N, 3)");
  TORCH_CHECK(grid_size >= 1, "region_partition: grid_size must be >= 1");
  TORCH_CHECK(!batch || (batch->dim() == 1 && batch->size(0) == coord.size(0) &&
                         batch->scalar_type() == at::kLong && batch->device() == coord.device()),
              "region_partition: batch must be (N,) int64 on coord's device");
  if (coord.is_cuda()) {
#ifdef WITH_CUDA
    return region_partition_cuda(coord, grid_size, batch);
#else
    TORCH_CHECK(false, "region_partition: pcseg._C was built without CUDA");
#endif
  }
  return region_partition_cpu(coord, grid_size, batch);
}

}  // namespace pcseg
