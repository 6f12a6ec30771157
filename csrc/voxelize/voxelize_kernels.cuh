// Torch-free voxelization kernels over raw pointers. The key packing is shared with voxelize_cpu.cpp;
// the __global__ kernels are compiled by nvcc only (voxelize.cu and tests/test_cuda_compile.py).
#pragma once

#include "common/hostdevice.h"

namespace pcseg {

// Bit layout of a voxel key: batch | x | y | z from the high to the low bits, so sorting keys sorts
// voxels by (batch, x, y, z). bits_x/y/z hold the per-axis extent after subtracting the batch minimum.
struct VoxelKeyLayout {
  int bits_x, bits_y, bits_z;
};

template <typename Key>
PCSEG_HD Key voxel_pack(int64_t b, uint32_t x, uint32_t y, uint32_t z, VoxelKeyLayout l) {
  Key k = static_cast<Key>(b);
  k = (k << l.bits_x) | x;
  k = (k << l.bits_y) | y;
  return (k << l.bits_z) | z;
}

template <typename Key>
PCSEG_HD void voxel_unpack(Key k, VoxelKeyLayout l, int64_t* b, int32_t* xyz) {
  xyz[2] = static_cast<int32_t>(k & ((Key(1) << l.bits_z) - 1));
  k >>= l.bits_z;
  xyz[1] = static_cast<int32_t>(k & ((Key(1) << l.bits_y) - 1));
  k >>= l.bits_y;
  xyz[0] = static_cast<int32_t>(k & ((Key(1) << l.bits_x) - 1));
  *b = static_cast<int64_t>(k >> l.bits_x);
}

#ifdef __CUDACC__

// grid (N, 3) = floor(coord / voxel_size); lo/hi (B, 3) per batch element min/max (preset to INT_MAX/INT_MIN).
template <typename scalar_t>
__global__ void voxel_grid_kernel(const scalar_t* __restrict__ coord, const int64_t* __restrict__ batch,
                                  int64_t n, scalar_t vx, scalar_t vy, scalar_t vz, int32_t* __restrict__ grid,
                                  int32_t* lo, int32_t* hi) {
  const scalar_t v[3] = {vx, vy, vz};
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = batch ? batch[i] : 0;
    for (int a = 0; a < 3; ++a) {
      const int32_t g = grid_floor(coord[3 * i + a], v[a]);
      grid[3 * i + a] = g;
      atomicMin(lo + 3 * b + a, g);
      atomicMax(hi + 3 * b + a, g);
    }
  }
}

// key (N,) int64 packed voxel keys, perm (N,) = 0..N-1 (the sort's payload).
__global__ void voxel_pack_kernel(const int32_t* __restrict__ grid, const int64_t* __restrict__ batch, int64_t n,
                                  const int32_t* __restrict__ lo, VoxelKeyLayout layout, int64_t* __restrict__ key) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = batch ? batch[i] : 0;
    const int32_t* g = grid + 3 * i;
    const int32_t* m = lo + 3 * b;
    key[i] = static_cast<int64_t>(voxel_pack<uint64_t>(b, uint32_t(g[0] - m[0]), uint32_t(g[1] - m[1]),
                                                      uint32_t(g[2] - m[2]), layout));
  }
}

// flag[j] = 1 where sorted key j starts a new voxel.
__global__ void voxel_flag_kernel(const int64_t* __restrict__ key, int64_t n, int64_t* __restrict__ flag) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    flag[j] = (j == 0 || key[j] != key[j - 1]) ? 1 : 0;
  }
}

// id (N,) inclusive prefix sum of the flags; writes inverse (N,), the start of each voxel in sorted order
// starts (M,), and the voxel's grid_coord (M, 3) and batch (M,).
__global__ void voxel_scatter_kernel(const int64_t* __restrict__ key, const int64_t* __restrict__ perm,
                                     const int64_t* __restrict__ id, int64_t n, VoxelKeyLayout layout,
                                     int64_t* __restrict__ inverse, int64_t* __restrict__ starts,
                                     int32_t* __restrict__ grid_out, int64_t* __restrict__ batch_out) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = id[j] - 1;
    inverse[perm[j]] = v;
    if (j == 0 || key[j] != key[j - 1]) {
      starts[v] = j;
      voxel_unpack<uint64_t>(static_cast<uint64_t>(key[j]), layout, batch_out + v, grid_out + 3 * v);
    }
  }
}

// counts (M,) from the voxel starts in sorted order.
__global__ void voxel_count_kernel(const int64_t* __restrict__ starts, int64_t m, int64_t n,
                                   int64_t* __restrict__ counts) {
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < m; v += int64_t(gridDim.x) * blockDim.x) {
    counts[v] = (v + 1 < m ? starts[v + 1] : n) - starts[v];
  }
}

#endif  // __CUDACC__

}  // namespace pcseg
