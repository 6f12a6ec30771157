// CPU region partition: group points by batch element (counting sort), pivots per (element, axis) by
// successive nth_element (O(n G) per axis), then a binary search per point and axis. OpenMP over both stages.
#include "region_partition/region_partition.h"
#include "region_partition/region_partition_kernels.cuh"
#include "common/parallel.h"

#include <ATen/Dispatch.h>

#include <algorithm>
#include <vector>

namespace pcseg {
namespace {

template <typename scalar_t>
void partition_impl(const at::Tensor& coord, int64_t g, const int64_t* batch, int64_t* cell) {
  const int64_t n = coord.size(0);
  const scalar_t* c = coord.data_ptr<scalar_t>();
  const int nthreads = cpu_threads(n, int64_t(1) << 15);
  int64_t nb = 1;
  if (batch) nb = *std::max_element(batch, batch + n) + 1;

  // Points of each batch element, in index order.
  std::vector<int64_t> start(nb + 1, 0), order(n);
  for (int64_t i = 0; i < n; ++i) ++start[(batch ? batch[i] : 0) + 1];
  for (int64_t b = 0; b < nb; ++b) start[b + 1] += start[b];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) order[fill[batch ? batch[i] : 0]++] = i;
  }

  std::vector<scalar_t> pivots(static_cast<size_t>(nb) * 3 * (g - 1));
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<scalar_t> values;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < nb * 3; ++task) {
      const int64_t b = task / 3, a = task % 3, nb_pts = start[b + 1] - start[b];
      if (nb_pts == 0 || g == 1) continue;
      values.resize(nb_pts);
      for (int64_t k = 0; k < nb_pts; ++k) values[k] = c[3 * order[start[b] + k] + a];
      scalar_t* piv = pivots.data() + task * (g - 1);
      int64_t prev = 0;
      for (int64_t j = 1; j < g; ++j) {
        const int64_t pos = j * nb_pts / g;
        std::nth_element(values.begin() + prev, values.begin() + pos, values.end());
        piv[j - 1] = values[pos];
        prev = pos;
      }
    }
  }
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t i = 0; i < n; ++i) cell[i] = region_cell(c + 3 * i, batch ? batch[i] : 0, pivots.data(), g);
}

}  // namespace

at::Tensor region_partition_cpu(const at::Tensor& coord_in, int64_t grid_size, const std::optional<at::Tensor>& batch_in) {
  const at::Tensor coord = coord_in.contiguous();
  const at::Tensor batch = batch_in ? batch_in->contiguous() : at::Tensor();
  at::Tensor cell = coord.new_empty({coord.size(0)}, coord.options().dtype(at::kLong));
  if (coord.size(0) == 0) return cell;
  AT_DISPATCH_FLOATING_TYPES(coord.scalar_type(), "region_partition_cpu", [&] {
    partition_impl<scalar_t>(coord, grid_size, batch.defined() ? batch.data_ptr<int64_t>() : nullptr,
                             cell.data_ptr<int64_t>());
  });
  return cell;
}

}  // namespace pcseg
