#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on built-in data.
#
# Until ingest and training land, the main job is the store's end-to-end example: generate
# a synthetic 16384² section as a sharded Zarr v3 array, show it with `cytonet info`, cut
# a region out as PNG, and run the region-read benchmark against tensorstore and
# zarr-python on the same files.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build="${CYTONET_BUILD:-$root/build}"
venv="${CYTONET_VENV:-$HOME/.cache/cytonet/venv}"
data="$build/bench-data/section-16384-lz4-noshuffle"

"$venv/bin/python" "$root/benchmarks/region_read.py" --build "$build" --data "$data" \
  --regions "${CYTONET_BENCH_REGIONS:-100}" --out "$build/region_read.json"
"$build/cli/cytonet" info "$data"
"$build/cli/cytonet" read "$data" --array section --box 6000:8048,6000:8048 --out "$build/region.png"
echo "results: $build/region_read.json, a region to look at: $build/region.png"
