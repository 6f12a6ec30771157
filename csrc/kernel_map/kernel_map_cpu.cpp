// CPU kernel maps: hash table of voxel keys, lookups in parallel (OpenMP), pairs compacted per kernel offset.
// The result does not depend on the number of threads (every write position is fixed before the parallel loops).
#include "kernel_map/kernel_map.h"
#include "kernel_map/kernel_map_kernels.cuh"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace pcseg {
namespace {

int num_threads() { return std::max(1, at::get_num_threads()); }

// max + 1 of every column of coords (n, 4), n > 0.
std::vector<int64_t> extent(const int32_t* coords, int64_t n) {
  int32_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
#pragma omp parallel for num_threads(num_threads()) reduction(max : m0, m1, m2, m3)
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* c = coords + 4 * i;
    m0 = std::max(m0, c[0]);
    m1 = std::max(m1, c[1]);
    m2 = std::max(m2, c[2]);
    m3 = std::max(m3, c[3]);
  }
  return {int64_t(m0) + 1, int64_t(m1) + 1, int64_t(m2) + 1, int64_t(m3) + 1};
}

GridDims checked_dims(int64_t b, int64_t x, int64_t y, int64_t z, const char* op) {
  const double volume = double(b) * double(x) * double(y) * double(z);
  TORCH_CHECK(volume < 4.6e18, op, ": grid (batch, x, y, z) = (", b, ", ", x, ", ", y, ", ", z,
              ") is too large for int64 keys");
  return GridDims{b, x, y, z};
}

Int3 int3(const std::vector<int64_t>& v) {
  return Int3{{static_cast<int32_t>(v[0]), static_cast<int32_t>(v[1]), static_cast<int32_t>(v[2])}};
}

struct HashTable {
  std::vector<int64_t> slots;
  HashView view;
  HashTable(int64_t n, int64_t z) {
    const uint64_t cap = hash_capacity(n);
    slots.assign(2 * cap, -1);
    view = HashView{slots.data(), cap - 1, z};
  }
  bool insert(int64_t key, int64_t value) { return hash_insert_host(view, key, value); }
  int64_t find(int64_t key) const { return hash_find(view, key); }
};

// Pairs from a (K, n) table of matches (-1 = none), query row i, matched row table[k * n + i].
// Pairs are grouped by offset, ascending i within one.
std::tuple<at::Tensor, at::Tensor, at::Tensor> compact(const std::vector<int32_t>& table, int64_t num_k, int64_t n,
                                                       bool query_is_out, const at::Tensor& like) {
  const auto lopt = like.options().dtype(at::kLong);
  at::Tensor counts = at::empty({num_k}, lopt);
  int64_t* cnt = counts.data_ptr<int64_t>();
#pragma omp parallel for num_threads(num_threads()) schedule(static, 1)
  for (int64_t k = 0; k < num_k; ++k) {
    int64_t c = 0;
    const int32_t* row = table.data() + k * n;
    for (int64_t i = 0; i < n; ++i) c += row[i] >= 0;
    cnt[k] = c;
  }
  std::vector<int64_t> start(num_k + 1, 0);
  for (int64_t k = 0; k < num_k; ++k) start[k + 1] = start[k] + cnt[k];
  at::Tensor in_idx = at::empty({start[num_k]}, lopt), out_idx = at::empty({start[num_k]}, lopt);
  int64_t* query = (query_is_out ? out_idx : in_idx).data_ptr<int64_t>();
  int64_t* match = (query_is_out ? in_idx : out_idx).data_ptr<int64_t>();
#pragma omp parallel for num_threads(num_threads()) schedule(static, 1)
  for (int64_t k = 0; k < num_k; ++k) {
    int64_t p = start[k];
    const int32_t* row = table.data() + k * n;
    for (int64_t i = 0; i < n; ++i) {
      if (row[i] >= 0) {
        query[p] = i;
        match[p] = row[i];
        ++p;
      }
    }
  }
  return {in_idx, out_idx, counts};
}

int64_t volume(const std::vector<int64_t>& kernel) { return kernel[0] * kernel[1] * kernel[2]; }

}  // namespace

SubmanifoldMap kernel_map_submanifold_cpu(const at::Tensor& coords, const std::vector<int64_t>& kernel) {
  const int64_t n = coords.size(0), num_k = volume(kernel);
  TORCH_CHECK(n < std::numeric_limits<int32_t>::max(), "kernel_map_submanifold: at most 2^31 - 1 voxels");
  const int32_t* c = coords.data_ptr<int32_t>();
  if (n == 0) {
    const auto lopt = coords.options().dtype(at::kLong);
    return {at::empty({0}, lopt), at::empty({0}, lopt), at::zeros({num_k}, lopt)};
  }
  const std::vector<int64_t> e = extent(c, n);
  const GridDims d = checked_dims(e[0], e[1], e[2], e[3], "kernel_map_submanifold");
  HashTable hash(n, d.z);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* ci = c + 4 * i;
    TORCH_CHECK_VALUE(hash.insert(grid_key(ci[0], ci[1], ci[2], ci[3], d), i),
                "kernel_map_submanifold: coords contains duplicate coordinates");
  }
  const Int3 k3 = int3(kernel);
  // Offsets k and K - 1 - k are mirror images: i feeds j through k iff j feeds i through K - 1 - k, so only the
  // first half is looked up; the centre offset is the identity. Within one offset j determines i, so the mirrored
  // writes of different threads never collide.
  std::vector<int32_t> table(num_k * n, -1);
  const int64_t center = num_k / 2;
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < center; ++k) {
      const int64_t j = hash.find(subm_neighbor_key(c + 4 * i, k, k3, d));
      if (j >= 0) {
        table[k * n + i] = static_cast<int32_t>(j);
        table[(num_k - 1 - k) * n + j] = static_cast<int32_t>(i);
      }
    }
    table[center * n + i] = static_cast<int32_t>(i);
  }
  return compact(table, num_k, n, /*query_is_out=*/true, coords);
}

DownsampleMap kernel_map_downsample_cpu(const at::Tensor& coords, const std::vector<int64_t>& kernel,
                                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                        const std::vector<int64_t>& out_shape) {
  const int64_t n = coords.size(0), num_k = volume(kernel);
  TORCH_CHECK(n < std::numeric_limits<int32_t>::max(), "kernel_map_downsample: at most 2^31 - 1 voxels");
  const int32_t* c = coords.data_ptr<int32_t>();
  const auto lopt = coords.options().dtype(at::kLong);
  if (n == 0) {
    return {at::empty({0, 4}, coords.options()), at::empty({0}, lopt), at::empty({0}, lopt), at::zeros({num_k}, lopt)};
  }
  const GridDims out =
      checked_dims(extent(c, n)[0], out_shape[0], out_shape[1], out_shape[2], "kernel_map_downsample");
  const Int3 k3 = int3(kernel), s3 = int3(stride), p3 = int3(padding);

  // unique output keys, sorted
  int64_t valid = 0;
#pragma omp parallel for num_threads(num_threads()) reduction(+ : valid)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < num_k; ++k) valid += downsample_target_key(c + 4 * i, k, k3, s3, p3, out) >= 0;
  }
  std::vector<int64_t> uniq;
  {
    HashTable seen(valid, out.z);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < num_k; ++k) {
        const int64_t key = downsample_target_key(c + 4 * i, k, k3, s3, p3, out);
        if (key >= 0 && seen.insert(key, 0)) uniq.push_back(key);
      }
    }
  }
  std::sort(uniq.begin(), uniq.end());
  const int64_t m = static_cast<int64_t>(uniq.size());
  HashTable rank(m, out.z);
  for (int64_t j = 0; j < m; ++j) rank.insert(uniq[j], j);
  at::Tensor out_coords = at::empty({m, 4}, coords.options());
  int32_t* oc = out_coords.data_ptr<int32_t>();
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t j = 0; j < m; ++j) grid_unkey(uniq[j], out, oc + 4 * j);

  std::vector<int32_t> table(num_k * n);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < num_k; ++k) {
      table[k * n + i] = static_cast<int32_t>(rank.find(downsample_target_key(c + 4 * i, k, k3, s3, p3, out)));
    }
  }
  auto [in_idx, out_idx, counts] = compact(table, num_k, n, /*query_is_out=*/false, coords);
  return {out_coords, in_idx, out_idx, counts};
}

}  // namespace pcseg
