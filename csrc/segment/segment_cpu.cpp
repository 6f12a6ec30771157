// CPU segment reductions: a counting sort turns the index into a CSR grouping (rows of each segment in
// increasing order), then segments are reduced in parallel, each by one thread, so results are deterministic.
#include "segment/segment.h"
#include "segment/segment_kernels.cuh"
#include "common/parallel.h"

#include <ATen/Dispatch.h>

#include <algorithm>
#include <vector>

namespace pcseg {
namespace {

struct Csr {
  std::vector<int64_t> ptr;    // (S + 1,)
  std::vector<int64_t> order;  // (N,) rows grouped by segment, increasing within a segment
};

Csr group_rows(const int64_t* index, int64_t n, int64_t num_segments) {
  Csr csr{std::vector<int64_t>(num_segments + 1, 0), std::vector<int64_t>(n)};
  for (int64_t i = 0; i < n; ++i) ++csr.ptr[index[i] + 1];
  for (int64_t s = 0; s < num_segments; ++s) csr.ptr[s + 1] += csr.ptr[s];
  std::vector<int64_t> fill(csr.ptr.begin(), csr.ptr.end() - 1);
  for (int64_t i = 0; i < n; ++i) csr.order[fill[index[i]]++] = i;
  return csr;
}

template <typename scalar_t>
void sum_impl(const scalar_t* x, const Csr& csr, int64_t num_segments, int64_t channels, scalar_t* y) {
#pragma omp parallel for num_threads(cpu_threads(static_cast<int64_t>(csr.order.size()) * channels, int64_t(1) << 15)) schedule(dynamic, 64)
  for (int64_t s = 0; s < num_segments; ++s) {
    scalar_t* row_out = y + s * channels;
    for (int64_t j = csr.ptr[s]; j < csr.ptr[s + 1]; ++j) {
      const scalar_t* row = x + csr.order[j] * channels;
      for (int64_t c = 0; c < channels; ++c) row_out[c] += row[c];
    }
  }
}

template <typename scalar_t>
void max_impl(const scalar_t* x, const Csr& csr, int64_t num_segments, int64_t channels, scalar_t* y, int64_t* a) {
#pragma omp parallel for num_threads(cpu_threads(static_cast<int64_t>(csr.order.size()) * channels, int64_t(1) << 15)) schedule(dynamic, 64)
  for (int64_t s = 0; s < num_segments; ++s) {
    if (csr.ptr[s] == csr.ptr[s + 1]) continue;
    scalar_t* best = y + s * channels;
    int64_t* best_row = a + s * channels;
    const int64_t first = csr.order[csr.ptr[s]];
    for (int64_t c = 0; c < channels; ++c) {
      best[c] = x[first * channels + c];
      best_row[c] = first;
    }
    for (int64_t j = csr.ptr[s] + 1; j < csr.ptr[s + 1]; ++j) {
      const int64_t r = csr.order[j];
      const scalar_t* row = x + r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        if (max_takes(row[c], best[c])) {
          best[c] = row[c];
          best_row[c] = r;
        }
      }
    }
  }
}

}  // namespace

at::Tensor segment_sum_cpu(const at::Tensor& src_in, const at::Tensor& index_in, int64_t num_segments) {
  const at::Tensor src = src_in.contiguous(), index = index_in.contiguous();
  const int64_t n = src.size(0), channels = src.size(1);
  at::Tensor out = src.new_zeros({num_segments, channels});
  if (n == 0 || channels == 0) return out;
  const Csr csr = group_rows(index.data_ptr<int64_t>(), n, num_segments);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "segment_sum_cpu", [&] {
    sum_impl(src.data_ptr<scalar_t>(), csr, num_segments, channels, out.data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> segment_max_cpu(const at::Tensor& src_in, const at::Tensor& index_in,
                                                   int64_t num_segments) {
  const at::Tensor src = src_in.contiguous(), index = index_in.contiguous();
  const int64_t n = src.size(0), channels = src.size(1);
  at::Tensor out = src.new_zeros({num_segments, channels});
  at::Tensor arg = src.new_full({num_segments, channels}, -1, src.options().dtype(at::kLong));
  if (n == 0 || channels == 0) return {out, arg};
  const Csr csr = group_rows(index.data_ptr<int64_t>(), n, num_segments);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "segment_max_cpu", [&] {
    max_impl(src.data_ptr<scalar_t>(), csr, num_segments, channels, out.data_ptr<scalar_t>(), arg.data_ptr<int64_t>());
  });
  return {out, arg};
}

}  // namespace pcseg
