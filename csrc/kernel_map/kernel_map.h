// Kernel maps of sparse 3D convolution (pcseg/ops/kernel_map.py is the reference and documents the semantics).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

namespace pcseg {

// coords   (M, 4) int32 contiguous [batch, x, y, z], non-negative, unique (duplicates raise)
// kernel   3 odd sizes (kx, ky, kz); K = kx * ky * kz offsets, k = (a * ky + b) * kz + c
// returns
//   in_idx   (P,) int64  input row of each pair (the voxel at out + (a, b, c) - kernel / 2)
//   out_idx  (P,) int64  output row (= input rows: output voxels are the input voxels)
//   counts   (K,) int64  pairs per offset; pairs are grouped by offset, ascending out_idx within one
using SubmanifoldMap = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// coords     (M, 4) int32 contiguous [batch, x, y, z], 0 <= x < D (input grid), unique
// kernel, stride, padding   3 values each; out_shape  3 values (D + 2 * padding - kernel) / stride + 1
// returns
//   out_coords (M', 4) int32  output voxels y (some input x = y * stride - padding + (a, b, c)), sorted (b, x, y, z)
//   in_idx, out_idx (P,) int64 and counts (K,) int64 as above; ascending in_idx within one offset
using DownsampleMap = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

SubmanifoldMap kernel_map_submanifold_cpu(const at::Tensor& coords, const std::vector<int64_t>& kernel);
DownsampleMap kernel_map_downsample_cpu(const at::Tensor& coords, const std::vector<int64_t>& kernel,
                                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                        const std::vector<int64_t>& out_shape);
#ifdef WITH_CUDA
SubmanifoldMap kernel_map_submanifold_cuda(const at::Tensor& coords, const std::vector<int64_t>& kernel);
DownsampleMap kernel_map_downsample_cuda(const at::Tensor& coords, const std::vector<int64_t>& kernel,
                                         const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                         const std::vector<int64_t>& out_shape);
#endif

inline void kernel_map_check(const at::Tensor& coords, const std::vector<int64_t>& kernel, const char* op) {
  TORCH_CHECK(coords.dim() == 2 && coords.size(1) == 4 && coords.scalar_type() == at::kInt,
              op, ": coords must be (M, 4) int32");
  TORCH_CHECK(kernel.size() == 3 && kernel[0] > 0 && kernel[1] > 0 && kernel[2] > 0,
              op, ": kernel must be 3 positive sizes");
}

inline SubmanifoldMap kernel_map_submanifold(const at::Tensor& coords, const std::vector<int64_t>& kernel) {
  kernel_map_check(coords, kernel, "kernel_map_submanifold");
  TORCH_CHECK(kernel[0] % 2 && kernel[1] % 2 && kernel[2] % 2, "kernel_map_submanifold: kernel sizes must be odd");
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return kernel_map_submanifold_cuda(coords.contiguous(), kernel);
#else
    TORCH_CHECK(false, "kernel_map_submanifold: pcseg._C was built without CUDA");
#endif
  }
  return kernel_map_submanifold_cpu(coords.contiguous(), kernel);
}

inline DownsampleMap kernel_map_downsample(const at::Tensor& coords, const std::vector<int64_t>& kernel,
                                           const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                           const std::vector<int64_t>& out_shape) {
  kernel_map_check(coords, kernel, "kernel_map_downsample");
  TORCH_CHECK(stride.size() == 3 && padding.size() == 3 && out_shape.size() == 3,
              "kernel_map_downsample: stride, padding and out_shape need 3 values each");
  for (int a = 0; a < 3; ++a) {
    TORCH_CHECK(stride[a] > 0 && padding[a] >= 0 && out_shape[a] > 0,
                "kernel_map_downsample: stride and out_shape must be positive, padding non-negative");
  }
  if (coords.is_cuda()) {
#ifdef WITH_CUDA
    return kernel_map_downsample_cuda(coords.contiguous(), kernel, stride, padding, out_shape);
#else
    TORCH_CHECK(false, "kernel_map_downsample: pcseg._C was built without CUDA");
#endif
  }
  return kernel_map_downsample_cpu(coords.contiguous(), kernel, stride, padding, out_shape);
}

}  // namespace pcseg
