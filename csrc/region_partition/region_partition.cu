// CUDA region partition launcher: pivots from torch sorts (segmented by batch element through two stable
// sorts), then one thread per point looks up its cell (region_partition_kernels.cuh).
#include "region_partition/region_partition.h"
#include "region_partition/region_partition_kernels.cuh"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace pcseg {

at::Tensor region_partition_cuda(const at::Tensor& coord_in, int64_t g, const std::optional<at::Tensor>& batch_in) {
  const c10::cuda::CUDAGuard guard(coord_in.device());
  const at::Tensor coord = coord_in.contiguous();
  const int64_t n = coord.size(0);
  const auto lopt = coord.options().dtype(at::kLong);
  at::Tensor cell = coord.new_empty({n}, lopt);
  if (n == 0) return cell;
  const at::Tensor batch = batch_in ? batch_in->contiguous() : coord.new_zeros({n}, lopt);
  const int64_t nb = batch.max().item<int64_t>() + 1;

  // pivots (B, 3, G - 1): value at sorted position start_b + floor(j * n_b / G) of each axis.
  at::Tensor pivots = coord.new_zeros({nb, 3, std::max<int64_t>(g - 1, 0)});
  if (g > 1) {
    const at::Tensor counts = batch.bincount({}, nb);
    const at::Tensor starts = counts.cumsum(0).sub(counts);
    at::Tensor j = coord.new_empty({g - 1}, lopt.device(at::kCPU));
    for (int64_t k = 0; k < g - 1; ++k) j.data_ptr<int64_t>()[k] = k + 1;
    j = j.to(coord.device());
    const at::Tensor pos =
        starts.unsqueeze(1).add(counts.unsqueeze(1).mul(j.unsqueeze(0)).div(g, "floor")).clamp_max(n - 1).view({-1});
    for (int64_t a = 0; a < 3; ++a) {
      const at::Tensor values = coord.select(1, a).contiguous();
      const at::Tensor by_value = std::get<1>(values.sort(/*stable=*/true, 0, false));
      const at::Tensor by_batch = std::get<1>(batch.index_select(0, by_value).sort(/*stable=*/true, 0, false));
      const at::Tensor sorted = values.index_select(0, by_value.index_select(0, by_batch));
      pivots.select(1, a).copy_(sorted.index_select(0, pos).view({nb, g - 1}));
    }
  }
  const int threads = 256;
  const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
  AT_DISPATCH_FLOATING_TYPES(coord.scalar_type(), "region_partition_cuda", [&] {
    region_cell_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        coord.data_ptr<scalar_t>(), batch.data_ptr<int64_t>(), pivots.data_ptr<scalar_t>(), n, g,
        cell.data_ptr<int64_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return cell;
}

}  // namespace pcseg
