# Sourced by demo.sh and test.sh: create or reuse the virtual environment and install pcseg into it.
# Usage: pcseg_install EXTRAS   (e.g. "spconv,dev")
# Environment: PCSEG_VENV (default .venv in the repository), PYTHON (default python3),
#              PCSEG_TORCH (default torch==2.13.0: a CPU wheel here; never an unpinned torch, which pulls CUDA).

pcseg_install() {
    local extras="$1"
    local root venv py stamp want
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${PCSEG_VENV:-$root/.venv}"
    py="${PYTHON:-python3}"

    if [ ! -x "$venv/bin/python" ]; then
        echo "[pcseg] creating virtual environment $venv"
        "$py" -m venv "$venv"
    fi
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    export PIP_DISABLE_PIP_VERSION_CHECK=1

    if ! python -c "import torch" >/dev/null 2>&1; then
        echo "[pcseg] installing ${PCSEG_TORCH:-torch==2.13.0}"
        python -m pip install -q "${PCSEG_TORCH:-torch==2.13.0}"
    fi
    # Build requirements must be present: the extension builds with --no-build-isolation against this torch.
    python -m pip install -q "setuptools>=64" wheel ninja

    pcseg_system_packages

    # Rebuild the extension only when csrc/ or setup.py changed (the build takes minutes).
    stamp="$venv/.pcseg-installed"
    want="$extras $(cd "$root" && cat setup.py pyproject.toml $(find csrc -type f | sort) | sha1sum | cut -c1-40)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! python -c "import pcseg._C" >/dev/null 2>&1; then
        echo "[pcseg] installing pcseg[$extras] and building the C++ extension (a few minutes)"
        (cd "$root" && python -m pip install -q --no-build-isolation -e ".[$extras]")
        echo "$want" > "$stamp"
    fi
}

# Debian packages that Open3D needs to import and to render offscreen (libusb for import, Mesa's
# lavapipe Vulkan driver and EGL for the offscreen renderer). Installed only where missing and possible.
pcseg_system_packages() {
    local pkgs="libusb-1.0-0 libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers"
    local missing=()
    command -v dpkg-query >/dev/null 2>&1 || return 0
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 && sudo="sudo -n" || {
            echo "[pcseg] not root: install ${missing[*]} for Open3D rendering"; return 0; }
    fi
    echo "[pcseg] installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
        || echo "[pcseg] warning: could not install ${missing[*]}; Open3D rendering tests will be skipped"
}
