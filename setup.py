"""Builds the C++/CUDA extension `pcseg._C`; the package metadata lives in pyproject.toml.

CPU: csrc/ext.cpp + every csrc/<op>/<op>_cpu.cpp (OpenMP). CUDA: the csrc/<op>/<op>.cu launchers are added
when torch sees a GPU at build time or FORCE_CUDA=1. ninja builds in parallel (MAX_JOBS jobs).
"""

import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
# -ffp-contract=off: no FMA contraction, so CPU kernels round exactly like the torch references.
CXX_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off"]
NVCC_FLAGS = ["-O3", "--fmad=false"]


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def extension():
    sources = ["csrc/ext.cpp"] + _sources("csrc/*/*_cpu.cpp")
    common = dict(include_dirs=[os.path.join(HERE, "csrc")], libraries=["gomp"], extra_link_args=["-fopenmp"])
    if torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1":
        return CUDAExtension(
            "pcseg._C",
            sources + _sources("csrc/*/*.cu"),
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
            **common,
        )
    return CppExtension("pcseg._C", sources, extra_compile_args={"cxx": CXX_FLAGS}, **common)


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)})
