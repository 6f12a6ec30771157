"""Point-cloud ops with a pure-torch reference, a C++ (OpenMP) kernel and a CUDA kernel each.

Every public function checks its inputs, runs the `pcseg._C` kernel when the extension is built for the input's
device and otherwise the reference (warning once). References are public (`*_reference`) as test oracles.
"""
from pcseg.ops.kernel_map import KernelMap, downsample_kernel_map, inverse_kernel_map, submanifold_kernel_map
from pcseg.ops.voxelize import Voxelization, voxelize, voxelize_reference

__all__ = [
    "KernelMap",
    "downsample_kernel_map",
    "inverse_kernel_map",
    "submanifold_kernel_map",
    "Voxelization",
    "voxelize",
    "voxelize_reference",
]
