#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite through CTest:
# GoogleTest suites, the Python interop tests (zarr-python, tensorstore), the
# module-dependency check and a short fuzzing run. Prints CTest's summary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build="${CYTONET_BUILD:-$root/build}"
ctest --test-dir "$build" --output-on-failure --timeout 1200 -j "$(nproc)" "$@"
