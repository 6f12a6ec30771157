// Torch-free region partition kernels: the per-point cell lookup is shared with region_partition_cpu.cpp;
// the __global__ kernel is compiled by nvcc only (region_partition.cu and tests/test_cuda_compile.py).
#pragma once

#include "common/hostdevice.h"

namespace pcseg {

// Cell of point p (3 coordinates) in batch element b; pivots (B, 3, G - 1) ascending per (b, axis).
template <typename scalar_t>
PCSEG_HD int64_t region_cell(const scalar_t* p, int64_t b, const scalar_t* pivots, int64_t g) {
  int64_t cell = b;
  for (int a = 0; a < 3; ++a) {
    const scalar_t* piv = pivots + (b * 3 + a) * (g - 1);
    int64_t lo = 0, hi = g - 1;  // number of pivots <= p[a], by binary search
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (piv[mid] <= p[a])
        lo = mid + 1;
      else
        hi = mid;
    }
    cell = cell * g + lo;
  }
  return cell;
}

#ifdef __CUDACC__

// cell (N,) from coord (N, 3), batch (N,) or null, pivots (B, 3, G - 1).
template <typename scalar_t>
__global__ void region_cell_kernel(const scalar_t* __restrict__ coord, const int64_t* __restrict__ batch,
                                   const scalar_t* __restrict__ pivots, int64_t n, int64_t g,
                                   int64_t* __restrict__ cell) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    cell[i] = region_cell(coord + 3 * i, batch ? batch[i] : 0, pivots, g);
  }
}

#endif  // __CUDACC__

}  // namespace pcseg
