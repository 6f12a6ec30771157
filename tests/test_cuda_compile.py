"""The CUDA twins compile: every csrc/<op>/<op>_kernels.cuh goes through nvcc (device code for sm_80), with every
kernel template instantiated for float and double, so a kernel cannot rot on machines without a GPU.

The launchers (<op>.cu) include torch and only build where torch has CUDA; the kernels they launch are the ones
checked here.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"
HEADERS = sorted(CSRC.glob("*/*_kernels.cuh"))
# `template <typename T> __global__ void name(`: instantiated below by taking the address of name<float/double>.
KERNEL_TEMPLATE = re.compile(r"template\s*<\s*typename\s+\w+\s*>\s*__global__\s+void\s+(\w+)\s*\(")
GLOBAL = re.compile(r"__global__\s+void\s+(\w+)\s*\(")


def find_nvcc():
    candidates = [shutil.which("nvcc"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")]
    return next((c for c in candidates if c and os.path.exists(c)), None)


def test_every_op_has_kernels():
    ops = sorted(p.name for p in CSRC.iterdir() if p.is_dir() and p.name != "common")
    assert ops, f"no op folders in {CSRC}"
    for op in ops:
        header = CSRC / op / f"{op}_kernels.cuh"
        assert header.exists(), f"{op}: missing {header.name} (torch-free device code)"
        assert GLOBAL.search(header.read_text()), f"{header} declares no __global__ kernel"


def test_kernels_compile_with_nvcc(tmp_path):
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    lines = [f'#include "{h.relative_to(CSRC).as_posix()}"' for h in HEADERS]
    lines += ["", "namespace pcseg {", "void* instantiated_kernels[] = {"]
    templates = []
    for header in HEADERS:
        for name in KERNEL_TEMPLATE.findall(header.read_text()):
            templates.append(name)
            lines += [f"    reinterpret_cast<void*>(&{name}<float>),", f"    reinterpret_cast<void*>(&{name}<double>),"]
    lines += ["};", "}  // namespace pcseg", ""]
    assert templates, "no kernel templates found: the pattern above no longer matches the headers"
    source = tmp_path / "all_kernels.cu"
    source.write_text("\n".join(lines))
    cmd = [nvcc, "-c", "-arch=sm_80", "-std=c++17", "-O3", "--fmad=false", f"-I{CSRC}", str(source),
           "-o", str(tmp_path / "all_kernels.o")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc failed:\n{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "all_kernels.o").stat().st_size > 0
