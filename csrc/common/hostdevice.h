// Helpers shared by the torch-free kernels (<op>_kernels.cuh), compiled by both g++ and nvcc.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define PCSEG_HD __host__ __device__ __forceinline__
#else
#define PCSEG_HD inline
#endif

namespace pcseg {

// a * b + c * d + e * f rounded after every operation, never fused into FMAs: CPU, CUDA and the torch
// reference give bit-identical squared distances, so `d2 <= r2` decides the same way everywhere.
PCSEG_HD float dot3_exact(float a, float b, float c, float d, float e, float f) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(__fadd_rn(__fmul_rn(a, b), __fmul_rn(c, d)), __fmul_rn(e, f));
#else
  return a * b + c * d + e * f;
#endif
}

PCSEG_HD double dot3_exact(double a, double b, double c, double d, double e, double f) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(__dadd_rn(__dmul_rn(a, b), __dmul_rn(c, d)), __dmul_rn(e, f));
#else
  return a * b + c * d + e * f;
#endif
}

// Squared Euclidean distance between two 3-vectors, same rounding on every device.
template <typename scalar_t>
PCSEG_HD scalar_t dist2_exact(const scalar_t* p, const scalar_t* q) {
  const scalar_t dx = p[0] - q[0], dy = p[1] - q[1], dz = p[2] - q[2];
  return dot3_exact(dx, dx, dy, dy, dz, dz);
}

// floor(c / v) as a grid index for |c / v| < 2^31 (pcseg.ops checks the range); IEEE division on both
// devices (no fast-math anywhere in the build). Truncate and correct: no libm call on the CPU.
template <typename scalar_t>
PCSEG_HD int32_t grid_floor(scalar_t c, scalar_t v) {
  const scalar_t q = c / v;
  const int32_t t = static_cast<int32_t>(q);
  return static_cast<scalar_t>(t) > q ? t - 1 : t;
}

// Number of bits needed to store values in [0, v].
PCSEG_HD int bit_length(uint64_t v) {
  int n = 0;
  while (v) {
    ++n;
    v >>= 1;
  }
  return n;
}

}  // namespace pcseg
