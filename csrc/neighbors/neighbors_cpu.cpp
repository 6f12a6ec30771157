// CPU neighbour search on a hashed uniform grid per batch element: points are bucketed by cell (hash table +
// counting sort, O(P)); a radius query visits the 27 cells around it (cell edge >= radius), a kNN query visits
// rings of cells around its own until the k-th best distance is below the distance to the next ring.
#include "neighbors/neighbors.h"
#include "neighbors/neighbors_kernels.cuh"
#include "common/parallel.h"

#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <utility>
#include <vector>

namespace pcseg {
namespace {

constexpr int64_t kMaxCellsPerAxis = int64_t(1) << 20;

inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Open-addressing map from a cell key to a dense cell number.
class CellTable {
 public:
  explicit CellTable(int64_t capacity) {
    int64_t size = 16;
    while (size < 2 * capacity) size *= 2;
    keys_.assign(size, kEmpty);
    values_.assign(size, -1);
    mask_ = static_cast<uint64_t>(size - 1);
  }
  // The cell number of key, inserting `next` when absent.
  int64_t insert(uint64_t key, int64_t next) {
    for (uint64_t h = mix64(key) & mask_;; h = (h + 1) & mask_) {
      if (keys_[h] == key) return values_[h];
      if (keys_[h] == kEmpty) {
        keys_[h] = key;
        values_[h] = next;
        return next;
      }
    }
  }
  int64_t find(uint64_t key) const {
    for (uint64_t h = mix64(key) & mask_;; h = (h + 1) & mask_) {
      if (keys_[h] == key) return values_[h];
      if (keys_[h] == kEmpty) return -1;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  std::vector<uint64_t> keys_;
  std::vector<int64_t> values_;
  uint64_t mask_ = 0;
};

// Uniform grid over the points of one batch element; cell (x, y, z) holds the points
// members[cell_start[c] .. cell_start[c + 1]) in increasing index, c = table.find(key(x, y, z)).
struct Grid {
  double origin[3] = {0, 0, 0};
  double edge = 1;
  int64_t dims[3] = {1, 1, 1};
  CellTable table{0};
  std::vector<int64_t> cell_start, members;

  uint64_t key(int64_t x, int64_t y, int64_t z) const {
    return static_cast<uint64_t>((z * dims[1] + y) * dims[0] + x);
  }
  // Cell coordinate of a value along axis a, clamped far outside the grid so it stays a valid int64.
  int64_t cell_of(double v, int a) const {
    const double t = std::floor((v - origin[a]) / edge);
    return static_cast<int64_t>(std::max(-1e15, std::min(1e15, t)));
  }
  // Points of cell (x, y, z) as [begin, end) into members; empty when outside or unoccupied.
  std::pair<int64_t, int64_t> cell(int64_t x, int64_t y, int64_t z) const {
    if (x < 0 || y < 0 || z < 0 || x >= dims[0] || y >= dims[1] || z >= dims[2]) return {0, 0};
    const int64_t c = table.find(key(x, y, z));
    return c < 0 ? std::pair<int64_t, int64_t>{0, 0} : std::pair<int64_t, int64_t>{cell_start[c], cell_start[c + 1]};
  }
};

// `edge_for(lo, hi, n)` picks the cell edge of an element with bounding box [lo, hi] and n points.
template <typename scalar_t, typename EdgeFn>
std::vector<Grid> build_grids(const scalar_t* p, const std::vector<int64_t>& start, const std::vector<int64_t>& order,
                              EdgeFn edge_for) {
  const int64_t nb = static_cast<int64_t>(start.size()) - 1;
  std::vector<Grid> grids(nb);
#pragma omp parallel for num_threads(cpu_threads(static_cast<int64_t>(order.size()), int64_t(1) << 14)) schedule(dynamic, 1)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t n = start[b + 1] - start[b];
    if (n == 0) continue;
    const int64_t* idx = order.data() + start[b];
    Grid& g = grids[b];
    double lo[3], hi[3];
    for (int a = 0; a < 3; ++a) lo[a] = hi[a] = static_cast<double>(p[3 * idx[0] + a]);
    for (int64_t i = 1; i < n; ++i) {
      for (int a = 0; a < 3; ++a) {
        lo[a] = std::min(lo[a], static_cast<double>(p[3 * idx[i] + a]));
        hi[a] = std::max(hi[a], static_cast<double>(p[3 * idx[i] + a]));
      }
    }
    const double widest = std::max({hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]});
    g.edge = std::max(edge_for(lo, hi, n), widest / static_cast<double>(kMaxCellsPerAxis));
    if (!(g.edge > 0)) g.edge = 1;  // all points coincide
    for (int a = 0; a < 3; ++a) {
      g.origin[a] = lo[a];
      g.dims[a] = g.cell_of(hi[a], a) + 1;
    }
    // Cell of every point, then a counting sort by cell (stable: increasing point index within a cell).
    g.table = CellTable(n);
    std::vector<int64_t> cell_of_point(n);
    int64_t cells = 0;
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t* q = p + 3 * idx[i];
      const uint64_t k = g.key(g.cell_of(q[0], 0), g.cell_of(q[1], 1), g.cell_of(q[2], 2));
      cell_of_point[i] = g.table.insert(k, cells);
      if (cell_of_point[i] == cells) ++cells;
    }
    g.cell_start.assign(cells + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++g.cell_start[cell_of_point[i] + 1];
    for (int64_t c = 0; c < cells; ++c) g.cell_start[c + 1] += g.cell_start[c];
    std::vector<int64_t> fill(g.cell_start.begin(), g.cell_start.end() - 1);
    g.members.resize(n);
    for (int64_t i = 0; i < n; ++i) g.members[fill[cell_of_point[i]]++] = idx[i];
  }
  return grids;
}

// Points grouped by batch element (increasing index within an element); start (B + 1,), B >= nb_min.
void group_by_batch(const int64_t* batch, int64_t n, int64_t nb_min, std::vector<int64_t>* start,
                    std::vector<int64_t>* order) {
  int64_t nb = nb_min;
  if (batch)
    for (int64_t i = 0; i < n; ++i) nb = std::max(nb, batch[i] + 1);
  else if (n > 0)
    nb = std::max<int64_t>(nb, 1);
  start->assign(nb + 1, 0);
  order->resize(n);
  for (int64_t i = 0; i < n; ++i) ++(*start)[(batch ? batch[i] : 0) + 1];
  for (int64_t b = 0; b < nb; ++b) (*start)[b + 1] += (*start)[b];
  std::vector<int64_t> fill(start->begin(), start->end() - 1);
  for (int64_t i = 0; i < n; ++i) (*order)[fill[batch ? batch[i] : 0]++] = i;
}

struct Batches {
  const int64_t* query;  // (Q,) or null
  std::vector<int64_t> start, order;  // points grouped by batch element
};

Batches prepare(const at::Tensor& points, const at::Tensor& query_batch, const at::Tensor& point_batch) {
  Batches out{query_batch.defined() ? query_batch.data_ptr<int64_t>() : nullptr, {}, {}};
  group_by_batch(point_batch.defined() ? point_batch.data_ptr<int64_t>() : nullptr, points.size(0), 0, &out.start,
                 &out.order);
  return out;
}

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor> radius_impl(const at::Tensor& query, const at::Tensor& points, double radius,
                                               const Batches& bt, int64_t max_neighbors) {
  const scalar_t* q = query.data_ptr<scalar_t>();
  const scalar_t* p = points.data_ptr<scalar_t>();
  const int64_t nq = query.size(0);
  const scalar_t r = static_cast<scalar_t>(radius);
  const scalar_t r2 = r * r;
  // Slightly wider cells than the radius: rounding can never move a neighbour two cells away.
  const double edge = static_cast<double>(r) * (1 + 1e-6);
  const std::vector<Grid> grids =
      build_grids(p, bt.start, bt.order, [edge](const double*, const double*, int64_t) { return edge; });
  const int64_t nb = static_cast<int64_t>(grids.size());

  const int nchunks = cpu_threads(nq, 256);
  std::vector<std::vector<int64_t>> pairs(nchunks);  // per chunk: query, point, query, point, ...
#pragma omp parallel for num_threads(nchunks) schedule(static, 1)
  for (int t = 0; t < nchunks; ++t) {
    std::vector<std::pair<scalar_t, int64_t>> found;
    for (int64_t i = nq * t / nchunks; i < nq * (t + 1) / nchunks; ++i) {
      const int64_t b = bt.query ? bt.query[i] : 0;
      if (b >= nb || grids[b].members.empty()) continue;
      const Grid& g = grids[b];
      const scalar_t* qi = q + 3 * i;
      const int64_t cx = g.cell_of(qi[0], 0), cy = g.cell_of(qi[1], 1), cz = g.cell_of(qi[2], 2);
      found.clear();
      for (int64_t x = cx - 1; x <= cx + 1; ++x)
        for (int64_t y = cy - 1; y <= cy + 1; ++y)
          for (int64_t z = cz - 1; z <= cz + 1; ++z) {
            const auto [begin, end] = g.cell(x, y, z);
            for (int64_t m = begin; m < end; ++m) {
              const int64_t j = g.members[m];
              const scalar_t d2 = dist2_exact(qi, p + 3 * j);
              if (d2 <= r2) found.emplace_back(d2, j);
            }
          }
      std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
        return neighbor_before(a.first, a.second, b.first, b.second);
      });
      const size_t keep = max_neighbors < 0 ? found.size() : std::min<size_t>(found.size(), max_neighbors);
      for (size_t m = 0; m < keep; ++m) {
        pairs[t].push_back(i);
        pairs[t].push_back(found[m].second);
      }
    }
  }
  int64_t total = 0;
  for (const auto& v : pairs) total += static_cast<int64_t>(v.size()) / 2;
  const auto lopt = query.options().dtype(at::kLong);
  at::Tensor query_idx = query.new_empty({total}, lopt), point_idx = query.new_empty({total}, lopt);
  int64_t* qo = query_idx.data_ptr<int64_t>();
  int64_t* po = point_idx.data_ptr<int64_t>();
  int64_t e = 0;
  for (const auto& v : pairs)
    for (size_t m = 0; m < v.size(); m += 2, ++e) {
      qo[e] = v[m];
      po[e] = v[m + 1];
    }
  return {query_idx, point_idx};
}

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor> knn_impl(const at::Tensor& query, const at::Tensor& points, int64_t k,
                                            const Batches& bt) {
  const scalar_t* q = query.data_ptr<scalar_t>();
  const scalar_t* p = points.data_ptr<scalar_t>();
  const int64_t nq = query.size(0);
  // Cells holding about k points: edge^d * density = k over the d axes the element really spans.
  const auto edge_for = [k](const double* lo, const double* hi, int64_t n) {
    const double widest = std::max({hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]});
    double volume = 1;
    int dims = 0;
    for (int a = 0; a < 3; ++a) {
      if (hi[a] - lo[a] > 1e-3 * widest) {
        volume *= hi[a] - lo[a];
        ++dims;
      }
    }
    return dims == 0 ? 0.0 : std::pow(volume * static_cast<double>(k) / static_cast<double>(n), 1.0 / dims);
  };
  const std::vector<Grid> grids = build_grids(p, bt.start, bt.order, edge_for);
  const int64_t nb = static_cast<int64_t>(grids.size());

  at::Tensor index = query.new_full({nq, k}, -1, query.options().dtype(at::kLong));
  at::Tensor dist2 = query.new_full({nq, k}, std::numeric_limits<scalar_t>::infinity());
  int64_t* io = index.data_ptr<int64_t>();
  scalar_t* dout = dist2.data_ptr<scalar_t>();
  using Entry = std::pair<scalar_t, int64_t>;
  const auto before = [](const Entry& a, const Entry& b) { return neighbor_before(a.first, a.second, b.first, b.second); };
#pragma omp parallel for num_threads(cpu_threads(nq, 256)) schedule(dynamic, 64)
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t b = bt.query ? bt.query[i] : 0;
    if (b >= nb || grids[b].members.empty()) continue;
    const Grid& g = grids[b];
    const scalar_t* qi = q + 3 * i;
    const int64_t c[3] = {g.cell_of(qi[0], 0), g.cell_of(qi[1], 1), g.cell_of(qi[2], 2)};
    // Rings r0 .. r_last of cells at Chebyshev distance r from the query's cell cover the whole grid.
    int64_t r0 = 0, r_last = 0;
    for (int a = 0; a < 3; ++a) {
      r0 = std::max({r0, -c[a], c[a] - (g.dims[a] - 1)});
      r_last = std::max({r_last, c[a], g.dims[a] - 1 - c[a]});
    }
    std::priority_queue<Entry, std::vector<Entry>, decltype(before)> heap(before);  // worst on top
    const auto visit = [&](int64_t x, int64_t y, int64_t z) {
      const auto [begin, end] = g.cell(x, y, z);
      for (int64_t m = begin; m < end; ++m) {
        const Entry e{dist2_exact(qi, p + 3 * g.members[m]), g.members[m]};
        if (static_cast<int64_t>(heap.size()) < k) {
          heap.push(e);
        } else if (before(e, heap.top())) {
          heap.pop();
          heap.push(e);
        }
      }
    };
    for (int64_t r = r0; r <= r_last; ++r) {
      const int64_t x0 = std::max(c[0] - r, int64_t(0)), x1 = std::min(c[0] + r, g.dims[0] - 1);
      const int64_t y0 = std::max(c[1] - r, int64_t(0)), y1 = std::min(c[1] + r, g.dims[1] - 1);
      const int64_t z0 = std::max(c[2] - r, int64_t(0)), z1 = std::min(c[2] + r, g.dims[2] - 1);
      for (int64_t x = x0; x <= x1; ++x) {
        const bool x_on_ring = x == c[0] - r || x == c[0] + r;
        for (int64_t y = y0; y <= y1; ++y) {
          if (x_on_ring || y == c[1] - r || y == c[1] + r) {
            for (int64_t z = z0; z <= z1; ++z) visit(x, y, z);
          } else {
            if (c[2] - r >= z0) visit(x, y, c[2] - r);
            if (r > 0 && c[2] + r <= z1) visit(x, y, c[2] + r);
          }
        }
      }
      // Points beyond ring r are more than r cell edges away; margins absorb the rounding of cell_of (1e-6
      // edges) and of the squared distances in the input dtype (1e-5 relative).
      if (static_cast<int64_t>(heap.size()) == k) {
        const double reach = std::max(0.0, static_cast<double>(r) - 1e-6) * g.edge;
        if (static_cast<double>(heap.top().first) <= reach * reach * (1 - 1e-5)) break;
      }
    }
    for (int64_t m = static_cast<int64_t>(heap.size()) - 1; m >= 0; --m) {
      io[i * k + m] = heap.top().second;
      dout[i * k + m] = heap.top().first;
      heap.pop();
    }
  }
  return {index, dist2};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> radius_query_cpu(const at::Tensor& query_in, const at::Tensor& points_in,
                                                    double radius, const std::optional<at::Tensor>& query_batch,
                                                    const std::optional<at::Tensor>& point_batch,
                                                    int64_t max_neighbors) {
  const at::Tensor query = query_in.contiguous(), points = points_in.contiguous();
  const at::Tensor qb = query_batch ? query_batch->contiguous() : at::Tensor();
  const at::Tensor pb = point_batch ? point_batch->contiguous() : at::Tensor();
  const Batches bt = prepare(points, qb, pb);
  return AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "radius_query_cpu", [&] {
    return radius_impl<scalar_t>(query, points, radius, bt, max_neighbors);
  });
}

std::tuple<at::Tensor, at::Tensor> knn_query_cpu(const at::Tensor& query_in, const at::Tensor& points_in, int64_t k,
                                                 const std::optional<at::Tensor>& query_batch,
                                                 const std::optional<at::Tensor>& point_batch) {
  const at::Tensor query = query_in.contiguous(), points = points_in.contiguous();
  const at::Tensor qb = query_batch ? query_batch->contiguous() : at::Tensor();
  const at::Tensor pb = point_batch ? point_batch->contiguous() : at::Tensor();
  const Batches bt = prepare(points, qb, pb);
  return AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_query_cpu",
                                    [&] { return knn_impl<scalar_t>(query, points, k, bt); });
}

}  // namespace pcseg
