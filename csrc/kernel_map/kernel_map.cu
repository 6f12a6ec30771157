// CUDA kernel maps: thin launcher over kernel_map_kernels.cuh; sorting, unique and compaction by torch.
// Same output as kernel_map_cpu.cpp: nonzero() lists a (K, n) table row-major, i.e. offset-major, ascending row.
#include "kernel_map/kernel_map.h"
#include "kernel_map/kernel_map_kernels.cuh"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace pcseg {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

GridDims checked_dims(int64_t b, int64_t x, int64_t y, int64_t z, const char* op) {
  TORCH_CHECK(double(b) * double(x) * double(y) * double(z) < 4.6e18, op, ": grid is too large for int64 keys");
  return GridDims{b, x, y, z};
}

Int3 int3(const std::vector<int64_t>& v) {
  return Int3{{static_cast<int32_t>(v[0]), static_cast<int32_t>(v[1]), static_cast<int32_t>(v[2])}};
}

struct DeviceHash {
  at::Tensor slots;
  HashView view;
};

// Hash of keys[i] -> i (keys < 0 skipped) for a grid of size z along z; reports whether a key occurred twice.
DeviceHash build_hash(const at::Tensor& keys, int64_t z, bool* duplicate) {
  const int64_t n = keys.numel();
  const uint64_t cap = hash_capacity(n);
  DeviceHash h{at::full({int64_t(2 * cap)}, -1, keys.options()), HashView{nullptr, cap - 1, z}};
  h.view.slots = h.slots.data_ptr<int64_t>();
  at::Tensor dup = at::zeros({1}, keys.options().dtype(at::kInt));
  if (n) {
    kmap_hash_insert_kernel<<<blocks_for(n), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        keys.data_ptr<int64_t>(), n, h.view, dup.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  *duplicate = dup.item<int32_t>() != 0;
  return h;
}

// (in_idx, out_idx, counts) of a (K, n) table of matches (-1 = none) on the query rows.
std::tuple<at::Tensor, at::Tensor, at::Tensor> compact(const at::Tensor& table, bool query_is_out) {
  const at::Tensor mask = table.ge(0);
  const at::Tensor nz = mask.nonzero();  // (P, 2) [k, row], row-major order
  const at::Tensor query = nz.select(1, 1).contiguous();
  const at::Tensor match = table.masked_select(mask);
  const at::Tensor counts = mask.sum(1);
  return query_is_out ? std::make_tuple(match, query, counts) : std::make_tuple(query, match, counts);
}

}  // namespace

SubmanifoldMap kernel_map_submanifold_cuda(const at::Tensor& coords, const std::vector<int64_t>& kernel) {
  const c10::cuda::CUDAGuard guard(coords.device());
  const int64_t n = coords.size(0), num_k = kernel[0] * kernel[1] * kernel[2];
  const auto lopt = coords.options().dtype(at::kLong);
  if (n == 0) return {at::empty({0}, lopt), at::empty({0}, lopt), at::zeros({num_k}, lopt)};
  const at::Tensor e = coords.amax(0).to(at::kCPU);
  const int32_t* ep = e.data_ptr<int32_t>();
  const GridDims d = checked_dims(ep[0] + 1, ep[1] + 1, ep[2] + 1, ep[3] + 1, "kernel_map_submanifold");
  auto stream = at::cuda::getCurrentCUDAStream();
  at::Tensor keys = at::empty({n}, lopt);
  kmap_coord_keys_kernel<<<blocks_for(n), kThreads, 0, stream>>>(coords.data_ptr<int32_t>(), n, d,
                                                                  keys.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  bool duplicate = false;
  const DeviceHash h = build_hash(keys, d.z, &duplicate);
  TORCH_CHECK_VALUE(!duplicate, "kernel_map_submanifold: coords contains duplicate coordinates");
  at::Tensor table = at::full({num_k, n}, -1, lopt);
  kmap_subm_table_kernel<<<blocks_for(n * (num_k / 2 + 1)), kThreads, 0, stream>>>(
      coords.data_ptr<int32_t>(), n, num_k, int3(kernel), d, h.view, table.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return compact(table, /*query_is_out=*/true);
}

DownsampleMap kernel_map_downsample_cuda(const at::Tensor& coords, const std::vector<int64_t>& kernel,
                                         const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                         const std::vector<int64_t>& out_shape) {
  const c10::cuda::CUDAGuard guard(coords.device());
  const int64_t n = coords.size(0), num_k = kernel[0] * kernel[1] * kernel[2];
  const auto lopt = coords.options().dtype(at::kLong);
  if (n == 0) {
    return {at::empty({0, 4}, coords.options()), at::empty({0}, lopt), at::empty({0}, lopt), at::zeros({num_k}, lopt)};
  }
  const int64_t batches = coords.select(1, 0).max().item<int32_t>() + 1;
  const GridDims out = checked_dims(batches, out_shape[0], out_shape[1], out_shape[2], "kernel_map_downsample");
  auto stream = at::cuda::getCurrentCUDAStream();
  at::Tensor targets = at::empty({num_k, n}, lopt);
  kmap_downsample_targets_kernel<<<blocks_for(n * num_k), kThreads, 0, stream>>>(
      coords.data_ptr<int32_t>(), n, num_k, int3(kernel), int3(stride), int3(padding), out,
      targets.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor uniq = std::get<0>(at::_unique(targets.masked_select(targets.ge(0)), /*sorted=*/true));
  const int64_t m = uniq.numel();
  at::Tensor out_coords = at::empty({m, 4}, coords.options());
  if (m) {
    kmap_decode_kernel<<<blocks_for(m), kThreads, 0, stream>>>(uniq.data_ptr<int64_t>(), m, out,
                                                                out_coords.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  bool duplicate = false;
  const DeviceHash h = build_hash(uniq, out.z, &duplicate);
  at::Tensor table = at::empty({num_k, n}, lopt);
  kmap_hash_lookup_kernel<<<blocks_for(n * num_k), kThreads, 0, stream>>>(
      targets.data_ptr<int64_t>(), n * num_k, h.view, table.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  auto [in_idx, out_idx, counts] = compact(table, /*query_is_out=*/false);
  return {out_coords, in_idx, out_idx, counts};
}

}  // namespace pcseg
