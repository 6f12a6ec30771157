// Thread count of the CPU kernels: torch's (torch.set_num_threads), reduced so that every thread gets at least
// `grain` items; small inputs run on one thread, where a parallel region would cost more than it saves.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace pcseg {

inline int cpu_threads(int64_t items, int64_t grain) {
  const int64_t by_size = std::max<int64_t>(1, items / std::max<int64_t>(1, grain));
  return static_cast<int>(std::min<int64_t>(std::max(1, at::get_num_threads()), by_size));
}

}  // namespace pcseg
