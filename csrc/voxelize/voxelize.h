// Voxelization: unique voxels of a batch of point clouds, point -> voxel map and counts.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <vector>

namespace pcseg {

// coord       (N, 3) float32/float64, contiguous, finite
// voxel_size  3 positive values, each exactly representable in coord's dtype
// batch       (N,) int64 >= 0 on coord's device, or nullopt (one point cloud)
// returns
//   grid_coord (M, 3) int32  floor(coord / voxel_size) minus the per-batch-element minimum (so >= 0)
//   batch      (M,)   int64  batch element of each voxel
//   inverse    (N,)   int64  voxel of each point, in [0, M)
//   counts     (M,)   int64  points per voxel
// Voxels are sorted by (batch, x, y, z); the result does not depend on the number of threads.
using VoxelizeResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

VoxelizeResult voxelize_cpu(const at::Tensor& coord, const std::vector<double>& voxel_size,
                            const std::optional<at::Tensor>& batch);
#ifdef WITH_CUDA
VoxelizeResult voxelize_cuda(const at::Tensor& coord, const std::vector<double>& voxel_size,
                             const std::optional<at::Tensor>& batch);
#endif

inline VoxelizeResult voxelize(const at::Tensor& coord, const std::vector<double>& voxel_size,
                               const std::optional<at::Tensor>& batch) {
  TORCH_CHECK(coord.dim() == 2 && coord.size(1) == 3, "voxelize: coord must be (N, 3)");
  TORCH_CHECK(voxel_size.size() == 3, "voxelize: voxel_size must have 3 values");
  TORCH_CHECK(!batch || (batch->dim() == 1 && batch->size(0) == coord.size(0) &&
                         batch->scalar_type() == at::kLong && batch->device() == coord.device()),
              "voxelize: batch must be (N,) int64 on coord's device");
  if (coord.is_cuda()) {
#ifdef WITH_CUDA
    return voxelize_cuda(coord, voxel_size, batch);
#else
    TORCH_CHECK(false, "voxelize: pcseg._C was built without CUDA");
#endif
  }
  return voxelize_cpu(coord, voxel_size, batch);
}

}  // namespace pcseg
