#!/usr/bin/env bash
# Install everything the tests need (venv, pinned CPU torch, spconv CUDA wheel, Open3D, the C++ extension)
# and run the test suite. Extra arguments go to pytest: scripts/test.sh tests/ops -x
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
pcseg_install "spconv,open3d,image,log,las,dev"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m pytest -q "$@"
