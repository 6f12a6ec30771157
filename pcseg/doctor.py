"""`pcseg doctor`: which versions are installed, whether they fit together, and what is missing for what.

Cheap by default (a few seconds): versions come from the installed distributions' metadata (spconv and Open3D are
not imported here: spconv's import takes several seconds and Open3D's can abort the process), torch and the
compiled extension `pcseg._C` are imported, and Open3D's offscreen rendering is tried on a 64-point scene in a child
process, the way `pcseg visualize --save` renders. `--thorough` also imports spconv and compares one of its
convolutions with pcseg's native backend on the same weights.

`collect()` returns the findings as plain data (the `--json` output); `format_report()` turns them into the text.
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import importlib.util
import json
import os
import platform
import re
import sys
import textwrap
import time
from typing import Any, Dict, List, Optional, Tuple

# Optional packages: (label, distribution names, what pcseg uses it for, how to install it). The "missing" section
# lists those not installed, except torch-scatter, which no pcseg code path needs.
OPTIONAL: Tuple[Tuple[str, Tuple[str, ...], str, str], ...] = (
    ("spconv", ("spconv-cu120", "spconv-cu126"),
     "sparse convolutions on CUDA (model.backend auto/spconv); pcseg's native backend runs without it",
     "pip install 'pcseg[spconv]'   (spconv-cu120 for Python < 3.11, spconv-cu126 for 3.11-3.13)"),
    ("Open3D", ("open3d-cpu", "open3d"),
     "the interactive window of `pcseg visualize` and its filament/legacy PNG renderers (without it --save uses "
     "the numpy renderer)",
     "pip install 'pcseg[open3d]'   (Debian: apt-get install libusb-1.0-0 libgl1 libegl1 libvulkan1 "
     "mesa-vulkan-drivers)"),
    ("scikit-image", ("scikit-image",),
     "SLIC superpixels of SLidR (method.superpixels: slic); without it they fall back to a grid of cells",
     "pip install 'pcseg[image]'"),
    ("tensorboard", ("tensorboard",),
     "TensorBoard event files in <train.out_dir>/tb (without it training logs to log.csv only)",
     "pip install 'pcseg[log]'"),
    ("laspy", ("laspy",), "LAS/LAZ scene files of a folder dataset (data.dataset: folder)", "pip install 'pcseg[las]'"),
    ("torch-scatter", ("torch-scatter",),
     "not needed: pcseg._C's segment ops do pcseg's scatter/segment reductions",
     "pip install --no-build-isolation torch-scatter   (builds from source, about 8 minutes)"),
)
NOT_NEEDED = ("torch-scatter",)
CORE = ("numpy", "plyfile", "PyYAML", "tqdm", "pillow")
WIDTH = 14  # label column of the text report
SPCONV_NAME = re.compile(r"^spconv(?:-cu(\d+))?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed() -> Dict[str, str]:
    """{normalised distribution name: version} of everything importlib.metadata sees."""
    found: Dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(_norm(name), dist.version)
    return found


def _cuda_of_suffix(digits: str) -> str:
    """'120' -> '12.0', '113' -> '11.3', '102' -> '10.2' (spconv/cumm wheel suffixes)."""
    return f"{digits[:-1]}.{digits[-1]}"


# -------------------------------------------------------------------------------------------------- findings
def torch_info() -> Dict[str, Any]:
    import torch

    cuda_build = torch.version.cuda
    info: Dict[str, Any] = {
        "version": torch.__version__, "cuda_build": cuda_build, "cuda_available": torch.cuda.is_available(),
        "threads": torch.get_num_threads(), "devices": [],
        "cudnn": torch.backends.cudnn.version() if cuda_build else None,
    }
    if info["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            info["devices"].append(f"cuda:{i} {torch.cuda.get_device_name(i)} (sm_{major}{minor})")
    return info


def spconv_info(installed: Dict[str, str], torch_cuda: Optional[str]) -> Dict[str, Any]:
    """Which spconv wheels are installed, their CUDA version, their cumm, and whether they fit torch."""
    wheels = sorted(name for name in installed if SPCONV_NAME.match(name))
    info: Dict[str, Any] = {"wheels": {name: installed[name] for name in wheels}, "status": "missing", "note": ""}
    if not wheels:
        info["note"] = "not installed: model.backend auto uses pcseg's native backend"
        return info
    if len(wheels) > 1:
        info["status"] = "problem"
        info["note"] = (f"{len(wheels)} spconv wheels share one `spconv` package ({', '.join(wheels)}): uninstall "
                        "all of them, then pip install 'pcseg[spconv]'")
        return info
    wheel = wheels[0]
    digits = SPCONV_NAME.match(wheel).group(1)
    if digits is None:
        info["status"] = "problem"
        info["note"] = ("the CPU-only `spconv` wheel gives wrong results with more than one thread and its backward "
                        "needs CUDA: pip uninstall spconv && pip install 'pcseg[spconv]'")
        return info
    cuda = _cuda_of_suffix(digits)
    info["cuda"] = cuda
    cumm = f"cumm-cu{digits}"
    others = sorted(n for n in installed if n.startswith("cumm") and n != cumm)
    if cumm not in installed:
        info["status"] = "problem"
        info["note"] = f"{wheel} needs {cumm}, which is not installed" + (
            f" (found {', '.join(others)})" if others else "")
        return info
    info["cumm"] = f"{cumm} {installed[cumm]}"
    if torch_cuda is None:
        info["status"] = "ok"
        info["note"] = (f"CUDA {cuda} wheel; torch is a CPU build, so spconv would run on CPU with ConvAlgo.Native "
                        "(correct there); model.backend auto uses the native backend on CPU")
    elif torch_cuda.split(".")[:2] == cuda.split("."):
        info["status"] = "ok"
        info["note"] = f"CUDA {cuda} wheel matches torch's CUDA {torch_cuda}"
    elif torch_cuda.split(".")[0] == cuda.split(".")[0]:
        info["status"] = "ok"
        info["note"] = (f"CUDA {cuda} wheel, torch has CUDA {torch_cuda}: same major version (minor-version "
                        "compatible); pip install 'pcseg[spconv]' picks the wheel of this Python")
    else:
        info["status"] = "problem"
        info["note"] = (f"CUDA {cuda} wheel does not match torch's CUDA {torch_cuda}: install the spconv-cuXYZ wheel "
                        f"of CUDA {torch_cuda.split('.')[0]}.x")
    return info


def extension_info() -> Dict[str, Any]:
    """pcseg._C: where it is and which ops have CPU / CUDA kernels (torch is imported first: _C links to it)."""
    import torch  # noqa: F401  (the extension needs torch's libraries loaded)

    try:
        from pcseg import _C  # type: ignore[attr-defined]
    except ImportError as exc:
        return {"built": False, "error": f"{type(exc).__name__}: {exc}", "cpu_ops": [], "cuda_ops": []}
    return {"built": True, "path": _C.__file__, "cpu_ops": list(_C.cpu_ops()), "cuda_ops": list(_C.cuda_ops())}


def render_check(timeout: float = 120.0) -> Dict[str, Any]:
    """Render a 64-point scene with Open3D's offscreen renderers the way `pcseg visualize --save` does (filament,
    then legacy, each in a child process); stops at the first that works."""
    import numpy as np

    from pcseg.vis.render import RenderJob, render_images, view_camera

    rng = np.random.default_rng(0)
    coord = rng.random((64, 3)).astype(np.float32)
    colors = np.broadcast_to(np.array([200, 30, 30], np.uint8), (1, 64, 3)).copy()
    job = RenderJob(coord, colors, np.zeros((1, 64), bool), [view_camera("bev", coord, 64, 48)], 3, 7)
    tried: Dict[str, str] = {}
    for backend in ("filament", "legacy"):
        tic = time.perf_counter()
        try:
            render_images(job, backend, timeout)
        except RuntimeError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            tried[backend] = "failed: " + (lines[-1].strip() if lines else "no output")
            continue
        tried[backend] = f"works ({time.perf_counter() - tic:.1f} s)"
        return {"renderer": backend, "tried": tried}
    return {"renderer": "numpy", "tried": tried}


def spconv_check() -> Dict[str, Any]:
    """Import spconv and compare a SubMConv3d 8 -> 8 (k=3) on ~200 random CPU voxels with the native backend."""
    import torch

    from pcseg.sparse import SparseTensor, SubMConv3d

    tic = time.perf_counter()
    try:
        import spconv.pytorch  # noqa: F401
    except Exception as exc:  # a broken wheel fails in many ways (ImportError, OSError, RuntimeError)
        return {"ok": False, "detail": f"import failed: {type(exc).__name__}: {exc}"}
    imported = time.perf_counter() - tic
    gen = torch.Generator().manual_seed(0)
    coords = torch.unique(torch.randint(0, 8, (256, 3), generator=gen), dim=0).int()
    coords = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords], 1)
    feats = torch.randn(len(coords), 8, generator=gen)
    native, other = SubMConv3d(8, 8, 3, backend="native"), SubMConv3d(8, 8, 3, backend="spconv")
    other.load_state_dict(native.state_dict())
    with torch.no_grad():
        a = native(SparseTensor(feats, coords, (8, 8, 8), 1)).feats
        b = other(SparseTensor(feats, coords, (8, 8, 8), 1)).feats
    error = float((a - b).abs().max())
    ok = error < 1e-4
    return {"ok": ok, "detail": f"import {imported:.1f} s; SubMConv3d on {len(coords)} CPU voxels: max |spconv - "
                                f"native| = {error:.1e} ({'agree' if ok else 'DISAGREE'})"}


def collect(render: bool = True, thorough: bool = False) -> Dict[str, Any]:
    """Everything `pcseg doctor` reports, as plain data (see the module docstring)."""
    import pcseg

    installed = _installed()
    report: Dict[str, Any] = {
        "pcseg": {"version": pcseg.__version__, "path": os.path.dirname(pcseg.__file__)},
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": f"{platform.system()} {platform.machine()}"},
        "torch": torch_info(),
        "core": {name: installed.get(_norm(name)) for name in CORE},
        "optional": {},
        "extension": extension_info(),
    }
    for label, dists, purpose, install in OPTIONAL:
        have = {d: installed[d] for d in dists if d in installed}
        report["optional"][label] = {"installed": have, "purpose": purpose, "install": install}
    report["spconv"] = spconv_info(installed, report["torch"]["cuda_build"])
    report["optional"]["spconv"]["installed"] = dict(report["spconv"]["wheels"])  # any spconv* wheel counts
    if installed.get("laspy") and not any(importlib.util.find_spec(m) for m in ("lazrs", "laszip")):
        report["optional"]["laspy"]["note"] = "reads .las; .laz also needs its lazrs backend: pip install 'pcseg[las]'"
    open3d = report["optional"]["Open3D"]
    if open3d["installed"] and render:
        open3d["render"] = render_check()
    if thorough and report["spconv"]["wheels"]:
        report["spconv"]["check"] = spconv_check()
    return report


# ------------------------------------------------------------------------------------------------------ text
def _versions(have: Dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in have.items())


def _wrap(label: str, text: str, indent: int = WIDTH) -> List[str]:
    """`label` padded to WIDTH, then `text` wrapped at 110 columns with continuation lines under the text."""
    first = f"{label:<{WIDTH}}" if indent == WIDTH else " " * indent
    return textwrap.wrap(text, 110, initial_indent=first, subsequent_indent=" " * (indent + 2),
                         break_on_hyphens=False, break_long_words=False) or [first.rstrip()]


def format_report(report: Dict[str, Any]) -> str:
    """The text `pcseg doctor` prints: one block per component, then what is missing for what."""
    t, ext, sp = report["torch"], report["extension"], report["spconv"]
    width = WIDTH
    lines = [f"{'pcseg':<{width}}{report['pcseg']['version']} ({report['pcseg']['path']})",
             f"{'Python':<{width}}{report['python']['version']} ({report['python']['executable']}, "
             f"{report['python']['platform']})"]
    build = f"CUDA {t['cuda_build']} build" + (f", cuDNN {t['cudnn']}" if t["cudnn"] else "") \
        if t["cuda_build"] else "CPU build (no CUDA)"
    lines.append(f"{'torch':<{width}}{t['version']}: {build}; torch.get_num_threads() = {t['threads']}")
    lines.append(f"{'':<{width}}CUDA available: {'yes' if t['cuda_available'] else 'no'}")
    lines += [f"{'':<{width}}{device}" for device in t["devices"]]
    lines.append(f"{'core':<{width}}" + ", ".join(f"{n} {v or 'MISSING'}" for n, v in report["core"].items()))

    if ext["built"]:
        lines.append(f"{'pcseg._C':<{width}}built ({ext['path']})")
        ops = list(dict.fromkeys(ext["cpu_ops"] + ext["cuda_ops"]))
        lines += _wrap("", f"CPU kernels:  {', '.join(ext['cpu_ops']) or 'none'}")
        lines += _wrap("", f"CUDA kernels: {', '.join(ext['cuda_ops']) or 'none (built without CUDA)'}")
        if t["cuda_available"] and not ext["cuda_ops"]:
            lines += _wrap("", "problem: a GPU is present but the extension has no CUDA kernels; rebuild with "
                               "FORCE_CUDA=1 pip install --no-build-isolation -e .")
        missing_cuda = [op for op in ops if op not in ext["cuda_ops"]]
        if ext["cuda_ops"] and missing_cuda:
            lines += _wrap("", f"on CUDA, these run their pure-torch reference: {', '.join(missing_cuda)}")
    else:
        lines += _wrap("pcseg._C", f"NOT BUILT ({ext['error']}): every op runs its pure-torch reference (slower); "
                                   "build it with pip install --no-build-isolation -e .")

    wheels = _versions(sp["wheels"]) or "not installed"
    lines.append(f"{'spconv':<{width}}{wheels}" + (f" with {sp['cumm']}" if sp.get("cumm") else ""))
    lines += _wrap("", ("problem: " if sp["status"] == "problem" else "") + sp["note"])
    if "check" in sp:
        lines += _wrap("", ("check: " if sp["check"]["ok"] else "problem: ") + sp["check"]["detail"])

    for label, item in report["optional"].items():
        if label == "spconv":
            continue
        state = _versions(item["installed"]) or "not installed"
        if label in NOT_NEEDED:
            state += f" ({item['purpose']})"
        lines += _wrap(label, state)
        if item.get("note"):
            lines += _wrap("", item["note"])
        if "render" in item:
            r = item["render"]
            tried = "; ".join(f"{name} {result}" for name, result in r["tried"].items())
            lines += _wrap("", f"offscreen rendering: {tried}")
            lines.append(f"{'':<{width}}`pcseg visualize --save` renders with: {r['renderer']}")

    missing = [(label, item) for label, item in report["optional"].items()
               if not item["installed"] and label not in NOT_NEEDED]
    if not report["extension"]["built"]:
        missing.insert(0, ("pcseg._C", {"purpose": "fast CPU/CUDA kernels of the ops (else pure-torch references)",
                                        "install": "pip install --no-build-isolation -e .   (needs a C++ compiler)"}))
    lines.append("")
    if not missing:
        lines.append("missing: nothing")
    else:
        lines.append("missing -> what it is needed for -> how to install")
        for label, item in missing:
            lines += _wrap("", f"{label} -> {item['purpose']}", indent=2)
            lines += _wrap("", f"-> {item['install']}", indent=4)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- CLI
def add_doctor_parser(subparsers) -> argparse.ArgumentParser:
    """Add `doctor` to the CLI's subparsers (func=run_doctor)."""
    p = subparsers.add_parser(
        "doctor", help="print versions (torch, CUDA, spconv, Open3D, pcseg._C ops) and what is missing for what",
        description="Print the versions of Python, torch (CUDA build, devices), spconv (which wheel, and whether it "
                    "fits torch's CUDA), Open3D (and which offscreen renderer works), the other optional packages "
                    "and the compiled extension pcseg._C (which ops have CPU and CUDA kernels); then what is missing, "
                    "what for, and how to install it. Always exits with status 0.")
    p.add_argument("--no-render", action="store_true", help="skip the Open3D offscreen rendering check")
    p.add_argument("--thorough", action="store_true",
                   help="also import spconv and compare one convolution with the native backend (about 10 s)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run_doctor)
    return p


def run_doctor(args: argparse.Namespace) -> int:
    report = collect(render=not args.no_render, thorough=args.thorough)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
