// Torch-free segment reduction kernels over a CSR grouping (rows of segment s: order[ptr[s]:ptr[s+1]], increasing).
// The max update rule is shared with segment_cpu.cpp; the __global__ kernels are compiled by nvcc only.
#pragma once

#include "common/hostdevice.h"

namespace pcseg {

// Whether value v replaces the running maximum best: strictly greater, or the first NaN (NaN propagates).
// Rows are visited in increasing order, so ties keep the lowest row.
template <typename scalar_t>
PCSEG_HD bool max_takes(scalar_t v, scalar_t best) {
  return v > best || (v != v && best == best);
}

#ifdef __CUDACC__

// out (S, C) sums; one thread per (segment, channel).
template <typename scalar_t>
__global__ void segment_sum_kernel(const scalar_t* __restrict__ src, const int64_t* __restrict__ order,
                                   const int64_t* __restrict__ ptr, int64_t num_segments, int64_t channels,
                                   scalar_t* __restrict__ out) {
  const int64_t total = num_segments * channels;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = t / channels, c = t % channels;
    scalar_t acc = 0;
    for (int64_t j = ptr[s]; j < ptr[s + 1]; ++j) acc += src[order[j] * channels + c];
    out[t] = acc;
  }
}

// out (S, C) maxima and arg (S, C) their rows (0 and -1 for empty segments); one thread per (segment, channel).
template <typename scalar_t>
__global__ void segment_max_kernel(const scalar_t* __restrict__ src, const int64_t* __restrict__ order,
                                   const int64_t* __restrict__ ptr, int64_t num_segments, int64_t channels,
                                   scalar_t* __restrict__ out, int64_t* __restrict__ arg) {
  const int64_t total = num_segments * channels;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = t / channels, c = t % channels;
    scalar_t best = 0;
    int64_t best_row = -1;
    for (int64_t j = ptr[s]; j < ptr[s + 1]; ++j) {
      const int64_t row = order[j];
      const scalar_t v = src[row * channels + c];
      if (best_row < 0 || max_takes(v, best)) {
        best = v;
        best_row = row;
      }
    }
    out[t] = best;
    arg[t] = best_row;
  }
}

#endif  // __CUDACC__

}  // namespace pcseg
