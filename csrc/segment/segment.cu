// CUDA segment reduction launchers: CSR grouping from a stable torch argsort of the index, then one thread
// per (segment, channel) reduces its rows in increasing order (segment_kernels.cuh): deterministic, no atomics.
#include "segment/segment.h"
#include "segment/segment_kernels.cuh"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace pcseg {
namespace {

// order (N,) rows sorted by segment (stable), ptr (S + 1,) segment starts.
std::tuple<at::Tensor, at::Tensor> csr(const at::Tensor& index, int64_t num_segments) {
  const at::Tensor order = index.argsort(/*stable=*/true, 0, false);
  const at::Tensor ptr = index.new_zeros({num_segments + 1});
  ptr.narrow(0, 1, num_segments).copy_(index.bincount({}, num_segments).cumsum(0));
  return {order, ptr};
}

unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535)));
}

}  // namespace

at::Tensor segment_sum_cuda(const at::Tensor& src_in, const at::Tensor& index, int64_t num_segments) {
  const c10::cuda::CUDAGuard guard(src_in.device());
  const at::Tensor src = src_in.contiguous();
  const int64_t n = src.size(0), channels = src.size(1);
  at::Tensor out = src.new_zeros({num_segments, channels});
  if (n == 0 || channels == 0 || num_segments == 0) return out;
  const auto [order, ptr] = csr(index.contiguous(), num_segments);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "segment_sum_cuda", [&] {
    segment_sum_kernel<scalar_t><<<blocks_for(num_segments * channels), 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
        src.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), ptr.data_ptr<int64_t>(), num_segments, channels,
        out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> segment_max_cuda(const at::Tensor& src_in, const at::Tensor& index,
                                                    int64_t num_segments) {
  const c10::cuda::CUDAGuard guard(src_in.device());
  const at::Tensor src = src_in.contiguous();
  const int64_t n = src.size(0), channels = src.size(1);
  at::Tensor out = src.new_zeros({num_segments, channels});
  at::Tensor arg = src.new_full({num_segments, channels}, -1, src.options().dtype(at::kLong));
  if (n == 0 || channels == 0 || num_segments == 0) return {out, arg};
  const auto [order, ptr] = csr(index.contiguous(), num_segments);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "segment_max_cuda", [&] {
    segment_max_kernel<scalar_t><<<blocks_for(num_segments * channels), 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
        src.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), ptr.data_ptr<int64_t>(), num_segments, channels,
        out.data_ptr<scalar_t>(), arg.data_ptr<int64_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, arg};
}

}  // namespace pcseg
