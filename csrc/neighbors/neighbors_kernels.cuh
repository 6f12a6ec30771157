// Torch-free neighbour-search kernels. The ordering rule is shared with neighbors_cpu.cpp; the __global__
// kernels (compiled by nvcc only: neighbors.cu, tests/test_cuda_compile.py) scan the points of the query's batch
// element by brute force: points sorted by batch element, element b owning rows start[b] .. start[b + 1].
#pragma once

#include "common/hostdevice.h"

namespace pcseg {

// Neighbour order: by squared distance, then by point index.
template <typename scalar_t>
PCSEG_HD bool neighbor_before(scalar_t d2a, int64_t ia, scalar_t d2b, int64_t ib) {
  return d2a < d2b || (d2a == d2b && ia < ib);
}

#ifdef __CUDACC__

// Rows [begin, end) of the sorted points that share query q's batch element.
__device__ __forceinline__ void batch_range(const int64_t* qbatch, int64_t q, const int64_t* start, int64_t nb,
                                            int64_t* begin, int64_t* end) {
  const int64_t b = qbatch ? qbatch[q] : 0;
  *begin = b < nb ? start[b] : 0;
  *end = b < nb ? start[b + 1] : 0;
}

// count (Q,) points within r2 of each query.
template <typename scalar_t>
__global__ void radius_count_kernel(const scalar_t* __restrict__ query, const int64_t* __restrict__ qbatch,
                                    int64_t nq, const scalar_t* __restrict__ sorted_points,
                                    const int64_t* __restrict__ start, int64_t nb, scalar_t r2,
                                    int64_t* __restrict__ count) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < nq; q += int64_t(gridDim.x) * blockDim.x) {
    int64_t begin, end, c = 0;
    batch_range(qbatch, q, start, nb, &begin, &end);
    for (int64_t j = begin; j < end; ++j) c += dist2_exact(query + 3 * q, sorted_points + 3 * j) <= r2;
    count[q] = c;
  }
}

// Writes the pairs of query q at rows offset[q] .. offset[q] + count[q], in increasing point index.
template <typename scalar_t>
__global__ void radius_fill_kernel(const scalar_t* __restrict__ query, const int64_t* __restrict__ qbatch,
                                   int64_t nq, const scalar_t* __restrict__ sorted_points,
                                   const int64_t* __restrict__ sorted_index, const int64_t* __restrict__ start,
                                   int64_t nb, scalar_t r2, const int64_t* __restrict__ offset,
                                   int64_t* __restrict__ out_query, int64_t* __restrict__ out_point,
                                   scalar_t* __restrict__ out_dist2) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < nq; q += int64_t(gridDim.x) * blockDim.x) {
    int64_t begin, end, e = offset[q];
    batch_range(qbatch, q, start, nb, &begin, &end);
    for (int64_t j = begin; j < end; ++j) {
      const scalar_t d2 = dist2_exact(query + 3 * q, sorted_points + 3 * j);
      if (d2 <= r2) {
        out_query[e] = q;
        out_point[e] = sorted_index[j];
        out_dist2[e] = d2;
        ++e;
      }
    }
  }
}

// index (Q, k) / dist2 (Q, k): the k nearest points of each query by insertion into its output row;
// -1 / +inf where fewer. Points are visited in increasing index, so ties keep the lower index first.
template <typename scalar_t>
__global__ void knn_kernel(const scalar_t* __restrict__ query, const int64_t* __restrict__ qbatch, int64_t nq,
                           const scalar_t* __restrict__ sorted_points, const int64_t* __restrict__ sorted_index,
                           const int64_t* __restrict__ start, int64_t nb, int64_t k, scalar_t inf,
                           int64_t* __restrict__ index, scalar_t* __restrict__ dist2) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < nq; q += int64_t(gridDim.x) * blockDim.x) {
    int64_t* row_index = index + q * k;
    scalar_t* row_dist = dist2 + q * k;
    for (int64_t j = 0; j < k; ++j) {
      row_index[j] = -1;
      row_dist[j] = inf;
    }
    int64_t begin, end;
    batch_range(qbatch, q, start, nb, &begin, &end);
    for (int64_t j = begin; j < end; ++j) {
      const scalar_t d2 = dist2_exact(query + 3 * q, sorted_points + 3 * j);
      if (row_index[k - 1] >= 0 && !(d2 < row_dist[k - 1])) continue;
      int64_t pos = k - 1;
      while (pos > 0 && (row_index[pos - 1] < 0 || d2 < row_dist[pos - 1])) {
        row_index[pos] = row_index[pos - 1];
        row_dist[pos] = row_dist[pos - 1];
        --pos;
      }
      row_index[pos] = sorted_index[j];
      row_dist[pos] = d2;
    }
  }
}

#endif  // __CUDACC__

}  // namespace pcseg
