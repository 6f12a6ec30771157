"""Point-cloud ops with a pure-torch reference, a C++ (OpenMP) kernel and a CUDA kernel each.

Every public function checks its inputs, runs the `pcseg._C` kernel when the extension is built for the input's
device and otherwise the reference (warning once). References are public (`*_reference`) as test oracles.
Kernel maps of sparse convolution live in `pcseg.ops.kernel_map`.
"""
from pcseg.ops.neighbors import knn_query, knn_query_reference, radius_query, radius_query_reference
from pcseg.ops.region_partition import region_partition, region_partition_reference
from pcseg.ops.segment import (
    segment_argmax,
    segment_max,
    segment_max_reference,
    segment_mean,
    segment_reduce,
    segment_reduce_reference,
    segment_sum,
)
from pcseg.ops.voxelize import Voxelization, voxelize, voxelize_reference

__all__ = [
    "Voxelization",
    "knn_query",
    "knn_query_reference",
    "radius_query",
    "radius_query_reference",
    "region_partition",
    "region_partition_reference",
    "segment_argmax",
    "segment_max",
    "segment_max_reference",
    "segment_mean",
    "segment_reduce",
    "segment_reduce_reference",
    "segment_sum",
    "voxelize",
    "voxelize_reference",
]
