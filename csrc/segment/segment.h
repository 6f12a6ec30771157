// Segment reductions: rows of src grouped by a segment index, reduced per segment (sum, max with argmax).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace pcseg {

// src           (N, C) float32/float64
// index         (N,) int64 in [0, S), any order, on src's device
// num_segments  S >= 0
// segment_sum -> (S, C): sum of the rows of each segment, added in increasing row order (deterministic);
//                0 for empty segments.
// segment_max -> ((S, C) max, (S, C) int64 argmax row): the lowest row on ties, the first NaN if any (NaN
//                propagates); 0 and -1 for empty segments.
at::Tensor segment_sum_cpu(const at::Tensor& src, const at::Tensor& index, int64_t num_segments);
std::tuple<at::Tensor, at::Tensor> segment_max_cpu(const at::Tensor& src, const at::Tensor& index,
                                                   int64_t num_segments);
#ifdef WITH_CUDA
at::Tensor segment_sum_cuda(const at::Tensor& src, const at::Tensor& index, int64_t num_segments);
std::tuple<at::Tensor, at::Tensor> segment_max_cuda(const at::Tensor& src, const at::Tensor& index,
                                                    int64_t num_segments);
#endif

inline void segment_check(const at::Tensor& src, const at::Tensor& index, int64_t num_segments) {
  TORCH_CHECK(src.dim() == 2, "segment: src must be (N, C)");
  TORCH_CHECK(index.dim() == 1 && index.size(0) == src.size(0) && index.scalar_type() == at::kLong &&
                  index.device() == src.device(),
              "segment: index must be (N,) int64 on src's device");
  TORCH_CHECK(num_segments >= 0, "segment: num_segments must be >= 0");
}

inline at::Tensor segment_sum(const at::Tensor& src, const at::Tensor& index, int64_t num_segments) {
  segment_check(src, index, num_segments);
  if (src.is_cuda()) {
#ifdef WITH_CUDA
    return segment_sum_cuda(src, index, num_segments);
#else
    TORCH_CHECK(false, "segment_sum: pcseg._C was built without CUDA");
#endif
  }
  return segment_sum_cpu(src, index, num_segments);
}

inline std::tuple<at::Tensor, at::Tensor> segment_max(const at::Tensor& src, const at::Tensor& index,
                                                      int64_t num_segments) {
  segment_check(src, index, num_segments);
  if (src.is_cuda()) {
#ifdef WITH_CUDA
    return segment_max_cuda(src, index, num_segments);
#else
    TORCH_CHECK(false, "segment_max: pcseg._C was built without CUDA");
#endif
  }
  return segment_max_cpu(src, index, num_segments);
}

}  // namespace pcseg
