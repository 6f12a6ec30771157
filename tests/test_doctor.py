"""`pcseg doctor`: the versions it prints are the ones installed, the ops are pcseg._C's, problems and missing
packages are named with what they are for and how to install them."""
import importlib.metadata as metadata
import importlib.util
import json
import platform
import sys

import pytest
import torch

import pcseg
from pcseg import doctor
from pcseg.cli import main


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def test_text_report_shows_what_is_installed(capsys):
    from pcseg import _C

    assert main(["doctor", "--no-render"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    torch_line = next(line for line in lines if line.startswith("torch "))
    assert torch_line.split()[1].rstrip(":") == torch.__version__
    assert ("CPU build (no CUDA)" in torch_line) == (torch.version.cuda is None)
    assert f"CUDA available: {'yes' if torch.cuda.is_available() else 'no'}" in out
    python_line = next(line for line in lines if line.startswith("Python "))
    assert python_line.split()[1] == platform.python_version() and sys.executable in python_line
    # the kernel lists are pcseg._C's own, in its order (continuation lines joined)
    text = " ".join(line.strip() for line in lines)
    assert f"CPU kernels: {', '.join(_C.cpu_ops())} CUDA kernels:" in text.replace("  ", " ")
    cuda = ", ".join(_C.cuda_ops()) or "none (built without CUDA)"
    assert f"CUDA kernels: {cuda}" in text
    assert f"plyfile {metadata.version('plyfile')}" in out and f"numpy {metadata.version('numpy')}" in out
    for label, dist in (("scikit-image", "scikit-image"), ("tensorboard", "tensorboard"), ("laspy", "laspy")):
        line = next(line for line in lines if line.startswith(label + " "))
        assert (f"{dist} {_version(dist)}" in line) if _version(dist) else ("not installed" in line)
    assert "offscreen rendering" not in out  # --no-render


def test_json_report_matches_the_environment(capsys):
    from pcseg import _C

    assert main(["doctor", "--no-render", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["cuda_build"] == torch.version.cuda
    assert report["torch"]["cuda_available"] == torch.cuda.is_available()
    assert len(report["torch"]["devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert report["extension"]["built"] and report["extension"]["path"] == _C.__file__
    assert report["extension"]["cpu_ops"] == list(_C.cpu_ops())
    assert report["extension"]["cuda_ops"] == list(_C.cuda_ops())
    assert report["pcseg"]["version"] == pcseg.__version__
    wheels = {d: _version(d) for d in ("spconv", "spconv-cu120", "spconv-cu126") if _version(d)}
    assert {k: v for k, v in report["spconv"]["wheels"].items() if k in wheels} == wheels
    open3d = {d: _version(d) for d in ("open3d", "open3d-cpu") if _version(d)}
    assert report["optional"]["Open3D"]["installed"] == open3d


@pytest.mark.parametrize("installed, torch_cuda, status, words", [
    ({}, None, "missing", "not installed"),
    ({"spconv": "2.3.8"}, None, "problem", "CPU-only `spconv` wheel gives wrong results"),
    ({"spconv-cu120": "2.3.6", "spconv-cu126": "2.3.8", "cumm-cu126": "0.7"}, "12.6", "problem", "2 spconv wheels"),
    ({"spconv-cu126": "2.3.8"}, "12.6", "problem", "needs cumm-cu126, which is not installed"),
    ({"spconv-cu126": "2.3.8", "cumm-cu126": "0.7"}, None, "ok", "torch is a CPU build"),
    ({"spconv-cu126": "2.3.8", "cumm-cu126": "0.7"}, "12.6", "ok", "CUDA 12.6 wheel matches torch's CUDA 12.6"),
    ({"spconv-cu120": "2.3.6", "cumm-cu120": "0.4"}, "12.4", "ok", "same major version"),
    ({"spconv-cu120": "2.3.6", "cumm-cu120": "0.4"}, "11.8", "problem", "does not match torch's CUDA 11.8"),
])
def test_spconv_wheel_against_torch_cuda(installed, torch_cuda, status, words):
    info = doctor.spconv_info(installed, torch_cuda)
    assert info["status"] == status and words in info["note"]
    if status == "ok":
        assert info["cuda"] == {"spconv-cu120": "12.0", "spconv-cu126": "12.6"}[next(iter(info["wheels"]))]


def test_problems_and_missing_packages_are_named(monkeypatch, capsys):
    real = doctor._installed()
    fake = {k: v for k, v in real.items() if k not in ("scikit-image", "tensorboard") and not k.startswith("spconv")}
    fake["spconv"] = "2.3.8"  # the CPU-only wheel
    monkeypatch.setattr(doctor, "_installed", lambda: fake)
    assert main(["doctor", "--no-render"]) == 0
    out = capsys.readouterr().out
    assert "spconv        spconv 2.3.8" in out and "problem: the CPU-only `spconv` wheel" in out
    missing = out.split("missing -> what it is needed for -> how to install")[1]
    assert "scikit-image -> SLIC superpixels of SLidR" in missing and "pip install 'pcseg[image]'" in missing
    assert "tensorboard -> TensorBoard event files" in missing and "pip install 'pcseg[log]'" in missing
    assert "spconv ->" not in missing and "torch-scatter" not in missing  # installed (if wrong) / not needed


def test_extension_not_built(monkeypatch, capsys):
    monkeypatch.delattr(pcseg, "_C", raising=False)
    monkeypatch.setitem(sys.modules, "pcseg._C", None)  # `from pcseg import _C` raises ImportError
    assert doctor.extension_info()["built"] is False
    assert main(["doctor", "--no-render"]) == 0
    out = capsys.readouterr().out
    assert "pcseg._C      NOT BUILT (ModuleNotFoundError: import of pcseg._C halted" in out
    assert "pcseg._C -> fast CPU/CUDA kernels" in out.split("missing ->")[1]


def test_render_check_falls_back_like_visualize(monkeypatch):
    import pcseg.vis.render as render

    calls = []

    def fake(job, backend, timeout):
        calls.append(backend)
        assert job.coord.shape == (64, 3) and job.colors.shape == (1, 64, 3)
        if backend == "filament":
            raise RuntimeError("filament: renderer process failed (killed by signal 6):\nvulkan: no device")
        return job.colors[None]

    monkeypatch.setattr(render, "render_images", fake)
    result = doctor.render_check()
    assert calls == ["filament", "legacy"] and result["renderer"] == "legacy"
    assert result["tried"]["filament"] == "failed: vulkan: no device" and result["tried"]["legacy"].startswith("works")


@pytest.mark.skipif(importlib.util.find_spec("open3d") is None, reason="Open3D is not installed")
def test_render_check_with_open3d(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "`pcseg visualize --save` renders with:" in line)
    renderer = line.split(":")[-1].strip()
    assert renderer in ("filament", "legacy", "numpy")
    assert (f"{renderer} works" in out) if renderer != "numpy" else ("filament failed" in out)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("spconv") is None, reason="spconv is not installed")
def test_thorough_compares_spconv_with_native(capsys):
    assert main(["doctor", "--no-render", "--thorough"]) == 0
    out = capsys.readouterr().out
    assert "check: import" in out and "(agree)" in out


def test_report_of_a_cuda_machine():
    """The CUDA lines, on findings as a GPU machine would give them (this test runs anywhere)."""
    report = doctor.collect(render=False)
    report["torch"].update(version="2.13.0+cu126", cuda_build="12.6", cuda_available=True, cudnn=91000,
                           devices=["cuda:0 NVIDIA H100 80GB HBM3 (sm_90)"])
    report["extension"].update(built=True, path="/x/_C.so", cpu_ops=["voxelize", "segment", "knn_query"],
                               cuda_ops=["voxelize", "segment"])
    report["spconv"] = doctor.spconv_info({"spconv-cu126": "2.3.8", "cumm-cu126": "0.7.11"}, "12.6")
    text = doctor.format_report(report)
    assert "torch         2.13.0+cu126: CUDA 12.6 build, cuDNN 91000" in text
    assert "CUDA available: yes" in text and "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)" in text
    assert "CUDA kernels: voxelize, segment" in text
    assert "on CUDA, these run their pure-torch reference: knn_query" in text
    assert "CUDA 12.6 wheel matches torch's CUDA 12.6" in text and "problem" not in text
    report["extension"]["cuda_ops"] = []
    text = doctor.format_report(report)
    assert "problem: a GPU is present but the extension has no CUDA kernels; rebuild with FORCE_CUDA=1" in text
