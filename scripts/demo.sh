#!/usr/bin/env bash
# The main job on the embedded synthetic default: installs what it needs, then `pcseg demo`.
# Extra arguments go to `pcseg demo` (see `pcseg demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
pcseg_install "spconv,open3d,log"
pcseg demo "$@"
