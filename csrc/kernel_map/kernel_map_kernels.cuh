// Torch-free kernel-map building blocks over raw pointers, shared by kernel_map_cpu.cpp (host) and
// kernel_map.cu (device). The __global__ kernels are compiled by nvcc only (kernel_map.cu and the nvcc compile test).
//
// Keys: a voxel [b, x, y, z] of a grid of size (B, X, Y, Z) has key ((b * X + x) * Y + y) * Z + z, so sorting keys
// sorts voxels by (batch, x, y, z), as pcseg/ops/kernel_map.py. Hash table: open addressing, linear probing,
// capacity a power of two, empty slots hold key -1, keys of one (b, x, y) column in neighbouring slots.
#pragma once

#include "common/hostdevice.h"

namespace pcseg {

struct GridDims {
  int64_t b, x, y, z;
};

struct Int3 {
  int32_t v[3];
};

PCSEG_HD int64_t grid_key(int64_t b, int64_t x, int64_t y, int64_t z, GridDims d) {
  return ((b * d.x + x) * d.y + y) * d.z + z;
}

PCSEG_HD void grid_unkey(int64_t key, GridDims d, int32_t* out) {
  out[3] = static_cast<int32_t>(key % d.z);
  key /= d.z;
  out[2] = static_cast<int32_t>(key % d.y);
  key /= d.y;
  out[1] = static_cast<int32_t>(key % d.x);
  out[0] = static_cast<int32_t>(key / d.x);
}

// Offset k of a kernel (kx, ky, kz) as (a, b, c), c fastest.
PCSEG_HD void kernel_offset(int64_t k, Int3 kernel, int32_t* abc) {
  abc[2] = static_cast<int32_t>(k % kernel.v[2]);
  k /= kernel.v[2];
  abc[1] = static_cast<int32_t>(k % kernel.v[1]);
  abc[0] = static_cast<int32_t>(k / kernel.v[1]);
}

// Submanifold: key of the input that feeds output voxel c through offset k (c + abc - kernel / 2), or -1 outside.
PCSEG_HD int64_t subm_neighbor_key(const int32_t* c, int64_t k, Int3 kernel, GridDims d) {
  int32_t abc[3];
  kernel_offset(k, kernel, abc);
  int64_t q[3];
  const int64_t hi[3] = {d.x, d.y, d.z};
  for (int a = 0; a < 3; ++a) {
    q[a] = int64_t(c[1 + a]) + abc[a] - kernel.v[a] / 2;
    if (q[a] < 0 || q[a] >= hi[a]) return -1;
  }
  return grid_key(c[0], q[0], q[1], q[2], d);
}

// Strided: key of the output y with y * stride = c + padding - abc fed by input c through offset k, or -1.
PCSEG_HD int64_t downsample_target_key(const int32_t* c, int64_t k, Int3 kernel, Int3 stride, Int3 padding,
                                       GridDims out) {
  int32_t abc[3];
  kernel_offset(k, kernel, abc);
  int64_t y[3];
  const int64_t hi[3] = {out.x, out.y, out.z};
  for (int a = 0; a < 3; ++a) {
    const int64_t t = int64_t(c[1 + a]) + padding.v[a] - abc[a];
    if (t < 0 || t % stride.v[a] != 0) return -1;
    y[a] = t / stride.v[a];
    if (y[a] >= hi[a]) return -1;
  }
  return grid_key(c[0], y[0], y[1], y[2], out);
}

PCSEG_HD uint64_t hash_mix(uint64_t k) {  // splitmix64 finaliser
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ULL;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebULL;
  return k ^ (k >> 31);
}

// Hash table of voxel keys: slots[2 s] = key (-1 = empty), slots[2 s + 1] = value. The home slot hashes the
// (b, x, y) column and adds z, so the 3 z-neighbours of a lookup share cache lines.
struct HashView {
  int64_t* slots;
  uint64_t mask;  // capacity - 1
  int64_t z;      // grid size along z
};

PCSEG_HD uint64_t hash_home(HashView h, int64_t key) {
  return (hash_mix(static_cast<uint64_t>(key / h.z)) + static_cast<uint64_t>(key % h.z)) & h.mask;
}

// Value stored under key, or -1 (also for key < 0).
PCSEG_HD int64_t hash_find(HashView h, int64_t key) {
  if (key < 0) return -1;
  for (uint64_t slot = hash_home(h, key);; slot = (slot + 1) & h.mask) {
    const int64_t k = h.slots[2 * slot];
    if (k == key) return h.slots[2 * slot + 1];
    if (k == -1) return -1;
  }
}

// Host insertion (single thread). Returns false when the key was already present (value left unchanged).
inline bool hash_insert_host(HashView h, int64_t key, int64_t value) {
  for (uint64_t slot = hash_home(h, key);; slot = (slot + 1) & h.mask) {
    if (h.slots[2 * slot] == key) return false;
    if (h.slots[2 * slot] == -1) {
      h.slots[2 * slot] = key;
      h.slots[2 * slot + 1] = value;
      return true;
    }
  }
}

// Smallest power of two >= 4 * n (at least 16): the table stays at most a quarter full.
inline uint64_t hash_capacity(int64_t n) {
  uint64_t cap = 16;
  while (cap < 4 * static_cast<uint64_t>(n)) cap <<= 1;
  return cap;
}

#ifdef __CUDACC__

#define PCSEG_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// keys (n,) of coords (n, 4).
__global__ void kmap_coord_keys_kernel(const int32_t* __restrict__ coords, int64_t n, GridDims d,
                                       int64_t* __restrict__ keys) {
  PCSEG_GRID_STRIDE(i, n) {
    const int32_t* c = coords + 4 * i;
    keys[i] = grid_key(c[0], c[1], c[2], c[3], d);
  }
}

// Insert keys[i] -> i (keys < 0 skipped); sets *duplicate when a key is inserted twice.
__global__ void kmap_hash_insert_kernel(const int64_t* __restrict__ keys, int64_t n, HashView h, int32_t* duplicate) {
  PCSEG_GRID_STRIDE(i, n) {
    const int64_t key = keys[i];
    if (key < 0) continue;
    for (uint64_t slot = hash_home(h, key);; slot = (slot + 1) & h.mask) {
      const unsigned long long prev = atomicCAS(reinterpret_cast<unsigned long long*>(h.slots + 2 * slot),
                                                static_cast<unsigned long long>(-1LL),
                                                static_cast<unsigned long long>(key));
      if (prev == static_cast<unsigned long long>(-1LL)) {
        h.slots[2 * slot + 1] = i;
        break;
      }
      if (prev == static_cast<unsigned long long>(key)) {
        *duplicate = 1;
        break;
      }
    }
  }
}

// table (K, n), preset to -1: input row feeding output i through offset k. Offsets k and K - 1 - k are mirror
// images, so only k < K / 2 is looked up and written twice; the centre offset K / 2 is the identity.
__global__ void kmap_subm_table_kernel(const int32_t* __restrict__ coords, int64_t n, int64_t num_k, Int3 kernel,
                                       GridDims d, HashView h, int64_t* __restrict__ table) {
  const int64_t center = num_k / 2;
  PCSEG_GRID_STRIDE(t, n * (center + 1)) {
    const int64_t k = t / n, i = t % n;
    if (k == center) {
      table[k * n + i] = i;
      continue;
    }
    const int64_t j = hash_find(h, subm_neighbor_key(coords + 4 * i, k, kernel, d));
    if (j >= 0) {
      table[k * n + i] = j;
      table[(num_k - 1 - k) * n + j] = i;
    }
  }
}

// targets (K, n): key of the output fed by input i through offset k, -1 where none.
__global__ void kmap_downsample_targets_kernel(const int32_t* __restrict__ coords, int64_t n, int64_t num_k,
                                               Int3 kernel, Int3 stride, Int3 padding, GridDims out,
                                               int64_t* __restrict__ targets) {
  PCSEG_GRID_STRIDE(t, n * num_k) {
    const int64_t k = t / n, i = t % n;
    targets[t] = downsample_target_key(coords + 4 * i, k, kernel, stride, padding, out);
  }
}

// coords (n, 4) of keys (n,).
__global__ void kmap_decode_kernel(const int64_t* __restrict__ keys, int64_t n, GridDims d,
                                   int32_t* __restrict__ coords) {
  PCSEG_GRID_STRIDE(i, n) { grid_unkey(keys[i], d, coords + 4 * i); }
}

// result[i] = value of query[i] in the table, -1 where absent or query < 0.
__global__ void kmap_hash_lookup_kernel(const int64_t* __restrict__ query, int64_t n, HashView h,
                                        int64_t* __restrict__ result) {
  PCSEG_GRID_STRIDE(i, n) { result[i] = hash_find(h, query[i]); }
}

#undef PCSEG_GRID_STRIDE

#endif  // __CUDACC__

}  // namespace pcseg
