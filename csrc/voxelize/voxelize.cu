// CUDA voxelization launcher: floor + per-batch min/max, packed int64 keys, torch's radix sort, run boundaries
// by a prefix sum. Kernels in voxelize_kernels.cuh; built only where torch has CUDA.
#include "voxelize/voxelize.h"
#include "voxelize/voxelize_kernels.cuh"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <climits>

namespace pcseg {
namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

}  // namespace

VoxelizeResult voxelize_cuda(const at::Tensor& coord_in, const std::vector<double>& voxel_size,
                             const std::optional<at::Tensor>& batch_in) {
  const c10::cuda::CUDAGuard guard(coord_in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor coord = coord_in.contiguous();
  const at::Tensor batch = batch_in ? batch_in->contiguous() : at::Tensor();
  const int64_t n = coord.size(0);
  const auto lopt = coord.options().dtype(at::kLong);
  const auto iopt = coord.options().dtype(at::kInt);
  if (n == 0) {
    return {coord.new_empty({0, 3}, iopt), coord.new_empty({0}, lopt), coord.new_empty({0}, lopt),
            coord.new_empty({0}, lopt)};
  }
  const int64_t* bptr = batch.defined() ? batch.data_ptr<int64_t>() : nullptr;
  const int64_t nb = batch.defined() ? batch.max().item<int64_t>() + 1 : 1;

  at::Tensor grid = coord.new_empty({n, 3}, iopt);
  at::Tensor lo = coord.new_full({nb, 3}, INT32_MAX, iopt);
  at::Tensor hi = coord.new_full({nb, 3}, INT32_MIN, iopt);
  AT_DISPATCH_FLOATING_TYPES(coord.scalar_type(), "voxelize_cuda", [&] {
    voxel_grid_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        coord.data_ptr<scalar_t>(), bptr, n, static_cast<scalar_t>(voxel_size[0]),
        static_cast<scalar_t>(voxel_size[1]), static_cast<scalar_t>(voxel_size[2]), grid.data_ptr<int32_t>(),
        lo.data_ptr<int32_t>(), hi.data_ptr<int32_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // Key layout from the largest per-axis extent over the batch elements that have points.
  const at::Tensor lo_cpu = lo.cpu(), hi_cpu = hi.cpu();
  const int32_t* l = lo_cpu.data_ptr<int32_t>();
  const int32_t* h = hi_cpu.data_ptr<int32_t>();
  uint32_t extent[3] = {0, 0, 0};
  for (int64_t b = 0; b < nb; ++b) {
    if (l[3 * b] > h[3 * b]) continue;
    for (int a = 0; a < 3; ++a)
      extent[a] = std::max(extent[a], static_cast<uint32_t>(int64_t(h[3 * b + a]) - l[3 * b + a]));
  }
  const VoxelKeyLayout layout{bit_length(extent[0]), bit_length(extent[1]), bit_length(extent[2])};
  const int bits = bit_length(static_cast<uint64_t>(nb - 1)) + layout.bits_x + layout.bits_y + layout.bits_z;
  TORCH_CHECK(bits <= 63, "voxelize (CUDA): batch and grid extents need ", bits,
              " key bits, more than 63; voxelize on the CPU");

  at::Tensor key = coord.new_empty({n}, lopt);
  voxel_pack_kernel<<<blocks_for(n), kThreads, 0, stream>>>(grid.data_ptr<int32_t>(), bptr, n,
                                                            lo.data_ptr<int32_t>(), layout, key.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  auto sorted = key.sort(/*stable=*/false, /*dim=*/0, /*descending=*/false);
  const at::Tensor skey = std::get<0>(sorted);
  const at::Tensor perm = std::get<1>(sorted);

  at::Tensor flag = coord.new_empty({n}, lopt);
  voxel_flag_kernel<<<blocks_for(n), kThreads, 0, stream>>>(skey.data_ptr<int64_t>(), n, flag.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor id = flag.cumsum(0);
  const int64_t m = id[n - 1].item<int64_t>();

  at::Tensor grid_out = coord.new_empty({m, 3}, iopt);
  at::Tensor batch_out = coord.new_empty({m}, lopt);
  at::Tensor inverse = coord.new_empty({n}, lopt);
  at::Tensor starts = coord.new_empty({m}, lopt);
  at::Tensor counts = coord.new_empty({m}, lopt);
  voxel_scatter_kernel<<<blocks_for(n), kThreads, 0, stream>>>(
      skey.data_ptr<int64_t>(), perm.data_ptr<int64_t>(), id.data_ptr<int64_t>(), n, layout,
      inverse.data_ptr<int64_t>(), starts.data_ptr<int64_t>(), grid_out.data_ptr<int32_t>(),
      batch_out.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  voxel_count_kernel<<<blocks_for(m), kThreads, 0, stream>>>(starts.data_ptr<int64_t>(), m, n,
                                                             counts.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grid_out, batch_out, inverse, counts};
}

}  // namespace pcseg
