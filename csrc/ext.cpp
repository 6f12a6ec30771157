// Python bindings of pcseg._C: one block per op (csrc/<op>/<op>.h documents shapes and dispatches by device).
// Each block registers its op name with PCSEG_OP so that cpu_ops() / cuda_ops() tell which kernels exist.
#include <torch/csrc/utils/pybind.h>

#include "voxelize/voxelize.h"
#include "kernel_map/kernel_map.h"  // helper "sparse"

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

  // ---- kernel_map (csrc/kernel_map, helper "sparse") ----
  m.def("kernel_map_submanifold", &pcseg::kernel_map_submanifold,
        "(in_idx, out_idx, counts) of the submanifold conv on coords (M,4) int32", py::arg("coords"),
        py::arg("kernel"));
  PCSEG_OP("kernel_map_submanifold");
  m.def("kernel_map_downsample", &pcseg::kernel_map_downsample,
        "(out_coords, in_idx, out_idx, counts) of the strided conv on coords (M,4) int32", py::arg("coords"),
        py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("out_shape"));
  PCSEG_OP("kernel_map_downsample");
  // ---- end kernel_map ----

  m.def("cpu_ops", [cpu_ops]() { return cpu_ops; }, "names of the ops with a CPU kernel");
  m.def("cuda_ops", [cuda_ops]() { return cuda_ops; }, "names of the ops with a CUDA kernel");
}
