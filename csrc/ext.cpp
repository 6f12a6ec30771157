// Python bindings of pcseg._C: one block per op (csrc/<op>/<op>.h documents shapes and dispatches by device).
// Each block registers its op name with PCSEG_OP so that cpu_ops() / cuda_ops() tell which kernels exist.
#include <torch/csrc/utils/pybind.h>

#include "kernel_map/kernel_map.h"
#include "neighbors/neighbors.h"
#include "region_partition/region_partition.h"
#include "segment/segment.h"
#include "voxelize/voxelize.h"

#ifdef WITH_CUDA
#define PCSEG_OP(name)       \
  cpu_ops.push_back(name);  \
  cuda_ops.push_back(name)
#else
#define PCSEG_OP(name) cpu_ops.push_back(name)
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "pcseg C++/CUDA ops; use them through pcseg.ops, which checks inputs and falls back to torch";
  std::vector<std::string> cpu_ops, cuda_ops;

  // ---- voxelize (csrc/voxelize) ----
  m.def("voxelize", &pcseg::voxelize, "(grid_coord, batch, inverse, counts) of coord (N,3)", py::arg("coord"),
        py::arg("voxel_size"), py::arg("batch"));
  PCSEG_OP("voxelize");

  // ---- segment reductions (csrc/segment) ----
  m.def("segment_sum", &pcseg::segment_sum, "(S,C) sums of src rows grouped by index", py::arg("src"),
        py::arg("index"), py::arg("num_segments"));
  m.def("segment_max", &pcseg::segment_max, "(S,C) max and (S,C) argmax (-1 when empty)", py::arg("src"),
        py::arg("index"), py::arg("num_segments"));
  PCSEG_OP("segment");

  // ---- radius / kNN queries (csrc/neighbors) ----
  m.def("radius_query", &pcseg::radius_query, "(query_idx, point_idx) pairs within radius", py::arg("query"),
        py::arg("points"), py::arg("radius"), py::arg("query_batch"), py::arg("point_batch"),
        py::arg("max_neighbors"));
  PCSEG_OP("radius_query");
  m.def("knn_query", &pcseg::knn_query, "(index (Q,k), dist2 (Q,k)) of the k nearest points", py::arg("query"),
        py::arg("points"), py::arg("k"), py::arg("query_batch"), py::arg("point_batch"));
  PCSEG_OP("knn_query");

  // ---- region partition (csrc/region_partition) ----
  m.def("region_partition", &pcseg::region_partition, "(N,) quantile-grid cell of every point", py::arg("coord"),
        py::arg("grid_size"), py::arg("batch"));
  PCSEG_OP("region_partition");

  // ---- sparse-conv kernel maps (csrc/kernel_map) ----
  m.def("kernel_map_submanifold", &pcseg::kernel_map_submanifold,
        "(in_idx, out_idx, counts) of the submanifold conv on coords (M,4) int32", py::arg("coords"),
        py::arg("kernel"));
  PCSEG_OP("kernel_map_submanifold");
  m.def("kernel_map_downsample", &pcseg::kernel_map_downsample,
        "(out_coords, in_idx, out_idx, counts) of the strided conv on coords (M,4) int32", py::arg("coords"),
        py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("out_shape"));
  PCSEG_OP("kernel_map_downsample");

  m.def("cpu_ops", [cpu_ops]() { return cpu_ops; }, "names of the ops with a CPU kernel");
  m.def("cuda_ops", [cuda_ops]() { return cuda_ops; }, "names of the ops with a CUDA kernel");
}
