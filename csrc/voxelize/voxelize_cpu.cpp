// CPU voxelization in O(N): pack (batch, x, y, z, point) into one integer word; one parallel MSD radix pass
// scatters the words into 2^11 buckets by the top key bits; every bucket (a few hundred words for uniform data,
// cache resident) is then sorted on its own and its runs of equal keys become voxels. Only the MSD pass and the
// inverse map touch memory out of cache. OpenMP-parallel; the result does not depend on the thread count.
// Measured at 1M points: fresh 4 KiB pages cost as much as a sort pass, so scratch lives on huge pages where
// the kernel offers them, and no buffer is allocated that the outputs do not need.
#include "voxelize/voxelize.h"
#include "voxelize/voxelize_kernels.cuh"
#include "common/parallel.h"

#include <ATen/Dispatch.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>
#include <new>

#include <sys/mman.h>

namespace pcseg {
namespace {

constexpr int kDigitBits = 11;  // 2048 buckets in the MSD pass

// Inputs are cut into `nchunks` contiguous chunks (fixed by the thread count asked for, not the one granted),
// so every result is independent of how OpenMP schedules the chunks.
inline int64_t chunk_begin(int64_t n, int64_t t, int64_t nchunks) { return n * t / nchunks; }

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename W>
using Buffer = std::unique_ptr<W[], FreeDeleter>;

// Uninitialised scratch of n words, 2 MiB aligned and marked for transparent huge pages when large.
template <typename W>
Buffer<W> scratch(int64_t n) {
  constexpr size_t kHuge = size_t(1) << 21;
  const size_t bytes = std::max<size_t>(static_cast<size_t>(n) * sizeof(W), 1);
  if (bytes < kHuge) return Buffer<W>(static_cast<W*>(std::malloc(bytes)));
  void* p = std::aligned_alloc(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
#ifdef MADV_HUGEPAGE
  if (p) madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return Buffer<W>(static_cast<W*>(p));
}

// Sorts the n words of one bucket by value (key bits, then point index), LSD radix on bits [lo_bit, hi_bit)
// (the bits above hi_bit are equal within a bucket, the bits below lo_bit are the point index, already
// increasing); tmp holds n words of scratch.
template <typename W>
void sort_bucket(W* words, W* tmp, int64_t n, int lo_bit, int hi_bit) {
  const int bits = hi_bit - lo_bit;
  if (bits <= 0 || n < 2) return;
  if (n <= 64) {
    std::sort(words, words + n);
    return;
  }
  constexpr int kSmallDigit = 8;
  const int passes = (bits + kSmallDigit - 1) / kSmallDigit;
  const int digit = (bits + passes - 1) / passes;
  const W mask = static_cast<W>((int64_t(1) << digit) - 1);
  int64_t count[int64_t(1) << kSmallDigit];
  W *src = words, *dst = tmp;
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = lo_bit + pass * digit;
    std::fill(count, count + (int64_t(1) << digit), 0);
    for (int64_t i = 0; i < n; ++i) ++count[static_cast<int64_t>((src[i] >> shift) & mask)];
    int64_t sum = 0;
    for (int64_t d = 0; d < (int64_t(1) << digit); ++d) {
      const int64_t c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; ++i) dst[count[static_cast<int64_t>((src[i] >> shift) & mask)]++] = src[i];
    std::swap(src, dst);
  }
  if (src != words) std::copy(src, src + n, words);
}

// W holds (voxel key << idx_bits) | point index; uint64_t when the bits fit, else unsigned __int128.
template <typename scalar_t, typename W>
VoxelizeResult voxelize_sorted(const at::Tensor& coord, const scalar_t* v, const int64_t* batch,
                               const std::vector<int32_t>& lo, VoxelKeyLayout layout, int key_bits, int idx_bits,
                               int nthreads) {
  const int64_t n = coord.size(0);
  const scalar_t* c = coord.data_ptr<scalar_t>();
  const W idx_mask = (W(1) << idx_bits) - 1;
  // Bucket = the top (at most kDigitBits) key bits; chunk t of the input counts its words per bucket.
  const int top_bits = std::min(key_bits, kDigitBits);
  const int top_shift = idx_bits + key_bits - top_bits;
  const int64_t nbuckets = int64_t(1) << top_bits;
  const int nchunks = nthreads;
  std::vector<int64_t> hist(static_cast<size_t>(nchunks) * nbuckets, 0);
  Buffer<W> buf_a = scratch<W>(n), buf_b = scratch<W>(n);
  if (!buf_a || !buf_b) throw std::bad_alloc();
  W* words = buf_a.get();
  W* sorted = buf_b.get();
#pragma omp parallel for num_threads(nthreads) schedule(static, 1)
  for (int t = 0; t < nchunks; ++t) {
    int64_t* h = hist.data() + t * nbuckets;
    for (int64_t i = chunk_begin(n, t, nchunks); i < chunk_begin(n, t + 1, nchunks); ++i) {
      const int64_t b = batch ? batch[i] : 0;
      const int32_t* m = lo.data() + 3 * b;
      const W key = voxel_pack<W>(b, uint32_t(grid_floor(c[3 * i], v[0]) - m[0]),
                                  uint32_t(grid_floor(c[3 * i + 1], v[1]) - m[1]),
                                  uint32_t(grid_floor(c[3 * i + 2], v[2]) - m[2]), layout);
      words[i] = (key << idx_bits) | static_cast<W>(i);
      ++h[static_cast<int64_t>(words[i] >> top_shift)];
    }
  }
  // Bucket starts, and per (bucket, chunk) write offsets: chunks in input order keep the scatter stable.
  std::vector<int64_t> bucket_start(nbuckets + 1, 0);
  int64_t sum = 0;
  for (int64_t d = 0; d < nbuckets; ++d) {
    bucket_start[d] = sum;
    for (int t = 0; t < nchunks; ++t) {
      const int64_t cnt = hist[t * nbuckets + d];
      hist[t * nbuckets + d] = sum;
      sum += cnt;
    }
  }
  bucket_start[nbuckets] = n;
#pragma omp parallel for num_threads(nthreads) schedule(static, 1)
  for (int t = 0; t < nchunks; ++t) {
    int64_t* h = hist.data() + t * nbuckets;
    for (int64_t i = chunk_begin(n, t, nchunks); i < chunk_begin(n, t + 1, nchunks); ++i)
      sorted[h[static_cast<int64_t>(words[i] >> top_shift)]++] = words[i];
  }
  // Sort each bucket on the remaining key bits (words is free scratch now) and count its voxels.
  std::vector<int64_t> voxel_start(nbuckets + 1, 0);
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 16)
  for (int64_t d = 0; d < nbuckets; ++d) {
    const int64_t begin = bucket_start[d], end = bucket_start[d + 1];
    sort_bucket(sorted + begin, words + begin, end - begin, idx_bits, top_shift);
    int64_t runs = 0;
    for (int64_t j = begin; j < end; ++j) runs += (j == begin || (sorted[j] >> idx_bits) != (sorted[j - 1] >> idx_bits));
    voxel_start[d + 1] = runs;
  }
  for (int64_t d = 0; d < nbuckets; ++d) voxel_start[d + 1] += voxel_start[d];
  const int64_t m = voxel_start[nbuckets];

  at::Tensor grid_out = coord.new_empty({m, 3}, coord.options().dtype(at::kInt));
  at::Tensor batch_out = coord.new_empty({m}, coord.options().dtype(at::kLong));
  at::Tensor inverse = coord.new_empty({n}, coord.options().dtype(at::kLong));
  at::Tensor counts = coord.new_empty({m}, coord.options().dtype(at::kLong));
  int32_t* g = grid_out.data_ptr<int32_t>();
  int64_t* bo = batch_out.data_ptr<int64_t>();
  int64_t* inv = inverse.data_ptr<int64_t>();
  int64_t* cnt = counts.data_ptr<int64_t>();
  // Runs never cross buckets (their top key bits differ), so each bucket writes its voxels on its own.
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 16)
  for (int64_t d = 0; d < nbuckets; ++d) {
    int64_t vid = voxel_start[d] - 1, run_begin = 0;
    const int64_t begin = bucket_start[d], end = bucket_start[d + 1];
    for (int64_t j = begin; j < end; ++j) {
      const W key = sorted[j] >> idx_bits;
      if (j == begin || key != (sorted[j - 1] >> idx_bits)) {
        if (vid >= voxel_start[d]) cnt[vid] = j - run_begin;
        ++vid;
        run_begin = j;
        voxel_unpack<W>(key, layout, bo + vid, g + 3 * vid);
      }
      inv[static_cast<int64_t>(sorted[j] & idx_mask)] = vid;
    }
    if (end > begin) cnt[vid] = end - run_begin;
  }
  return {grid_out, batch_out, inverse, counts};
}

template <typename scalar_t>
VoxelizeResult voxelize_impl(const at::Tensor& coord, const std::vector<double>& voxel_size, const int64_t* batch) {
  const int64_t n = coord.size(0);
  const scalar_t* c = coord.data_ptr<scalar_t>();
  const scalar_t v[3] = {static_cast<scalar_t>(voxel_size[0]), static_cast<scalar_t>(voxel_size[1]),
                         static_cast<scalar_t>(voxel_size[2])};
  const int nthreads = cpu_threads(n, int64_t(1) << 16);

  int64_t nb = 1;
  if (batch) {
    int64_t bmax = 0;
#pragma omp parallel for num_threads(nthreads) reduction(max : bmax)
    for (int64_t i = 0; i < n; ++i) bmax = std::max(bmax, batch[i]);
    nb = bmax + 1;
  }
  // Per batch element and axis: min and max grid index.
  std::vector<int32_t> lo(3 * nb, INT32_MAX), hi(3 * nb, INT32_MIN);
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<int32_t> tlo(3 * nb, INT32_MAX), thi(3 * nb, INT32_MIN);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = batch ? batch[i] : 0;
      for (int a = 0; a < 3; ++a) {
        const int32_t gi = grid_floor(c[3 * i + a], v[a]);
        tlo[3 * b + a] = std::min(tlo[3 * b + a], gi);
        thi[3 * b + a] = std::max(thi[3 * b + a], gi);
      }
    }
#pragma omp critical
    for (int64_t k = 0; k < 3 * nb; ++k) {
      lo[k] = std::min(lo[k], tlo[k]);
      hi[k] = std::max(hi[k], thi[k]);
    }
  }
  uint32_t extent[3] = {0, 0, 0};
  for (int64_t b = 0; b < nb; ++b) {
    if (lo[3 * b] > hi[3 * b]) continue;  // batch element without points
    for (int a = 0; a < 3; ++a)
      extent[a] = std::max(extent[a], static_cast<uint32_t>(int64_t(hi[3 * b + a]) - lo[3 * b + a]));
  }
  const VoxelKeyLayout layout{bit_length(extent[0]), bit_length(extent[1]), bit_length(extent[2])};
  const int key_bits = bit_length(static_cast<uint64_t>(nb - 1)) + layout.bits_x + layout.bits_y + layout.bits_z;
  const int idx_bits = bit_length(static_cast<uint64_t>(n - 1));
  if (key_bits + idx_bits <= 64)
    return voxelize_sorted<scalar_t, uint64_t>(coord, v, batch, lo, layout, key_bits, idx_bits, nthreads);
  return voxelize_sorted<scalar_t, unsigned __int128>(coord, v, batch, lo, layout, key_bits, idx_bits, nthreads);
}

}  // namespace

VoxelizeResult voxelize_cpu(const at::Tensor& coord_in, const std::vector<double>& voxel_size,
                            const std::optional<at::Tensor>& batch_in) {
  TORCH_CHECK(coord_in.size(0) < (int64_t(1) << 32), "voxelize: at most 2^32 points");
  const at::Tensor coord = coord_in.contiguous();
  const at::Tensor batch = batch_in ? batch_in->contiguous() : at::Tensor();
  const int64_t* bptr = batch.defined() ? batch.data_ptr<int64_t>() : nullptr;
  if (coord.size(0) == 0) {
    const auto lopt = coord.options().dtype(at::kLong);
    return {coord.new_empty({0, 3}, coord.options().dtype(at::kInt)), coord.new_empty({0}, lopt),
            coord.new_empty({0}, lopt), coord.new_empty({0}, lopt)};
  }
  return AT_DISPATCH_FLOATING_TYPES(coord.scalar_type(), "voxelize_cpu",
                                    [&] { return voxelize_impl<scalar_t>(coord, voxel_size, bptr); });
}

}  // namespace pcseg
