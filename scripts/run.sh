#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on built-in data:
#
#   1. `cytonet phantom` writes a small synthetic study (2 brains × 3 sections of
#      8192 × 6144 px at 1 µm/px, as tiled pyramidal BigTIFF and HDF5 slides, with midline
#      points, transforms to MNI space and layer masks);
#   2. `cytonet ingest` turns it into the dataset (OME-Zarr 0.5 pyramids, sharded Zarr v3);
#      a second run shows that complete sections are skipped;
#   3. `cytonet index` builds the sampling-point index (MNI coordinates, tissue filter) and
#      `cytonet query` finds points near an MNI position;
#   4. `cytonet info` prints what was made, and a level-1 region goes to build/section.png;
#   5. the training loader: `cytonet sample` draws plain and augmented patches side by side
#      into build/patches.png, and `cytonet bench-loader` times the loader;
#   6. `cytonet train` runs a short SpatialNCE pretraining of the small ResNet, and its loss
#      curve goes to build/main-job/loss.png.
#
# CYTONET_RUN_BENCH=1 also runs the region-read benchmark of docs/benchmarks.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build="${CYTONET_BUILD:-$root/build}"
venv="${CYTONET_VENV:-$HOME/.cache/cytonet/venv}"
cytonet="$build/cli/cytonet"
study="$build/main-job/phantom"
dataset="$build/main-job/dataset"

if [[ ! -f "$study/study.json" ]]; then
  "$cytonet" phantom --out "$study" --brains 2 --sections 3 --width 8192 --height 6144 --formats tiff,hdf5
fi
"$cytonet" ingest "$study/study.json" --out "$dataset"
"$cytonet" ingest "$study/study.json" --out "$dataset" --quiet   # resumable: all skipped
# The phantom is a shrunken brain (≈0.02 MNI mm per pixel at this size), so the tissue
# patch is 256 px (≈5 mm) rather than the paper's 4096 px at full size.
"$cytonet" index "$study/study.json" --dataset "$dataset" --patch-size 256
"$cytonet" verify "$dataset"
"$cytonet" info "$dataset"
"$cytonet" query "$dataset" --mni -38,-15,70 --radius 5 --limit 5
first="$(cd "$dataset/sections" && ls -d */*/ | head -1)"
"$cytonet" read "$dataset" --array "sections/${first%/}/1" --box 0:3072,0:4096 --out "$build/section.png"
"$cytonet" sample "$dataset" --out "$build/patches.png" --count 12 --size 384 --level 1
"$cytonet" bench-loader "$dataset" --size 512 --level 1 --batches 10

# 6. A short SpatialNCE pretraining of the small ResNet on the phantom (resumed, not redone,
#    when run again), and its loss curve.
run_dir="$build/main-job/run"
batch=32
mkdir -p "$run_dir"
cat > "$build/main-job/train.json" <<JSON
{"dataset": "$dataset", "run_dir": "$run_dir", "model": "small", "level": 1, "patch_size": 256,
 "batch_size": $batch, "steps": 60, "base_lr": 2.0, "schedule": "cosine", "warmup_steps": 5,
 "checkpoint_every": 20, "log_every": 10, "loader_threads": 1, "seed": 1}
JSON
"$cytonet" train --config "$build/main-job/train.json"
"$venv/bin/python" "$root/scripts/plot_loss.py" "$run_dir/metrics.jsonl" "$build/main-job/loss.png" "$batch"

echo "dataset: $dataset; to look at: a section at level 1 in $build/section.png," \
  "plain and augmented training patches in $build/patches.png, the pretraining's loss curve in" \
  "$build/main-job/loss.png (weights for Python: $run_dir/weights.pt)"

if [[ "${CYTONET_RUN_BENCH:-0}" == 1 ]]; then
  data="$build/bench-data/section-16384-lz4-noshuffle"
  "$venv/bin/python" "$root/benchmarks/region_read.py" --build "$build" --data "$data" \
    --regions "${CYTONET_BENCH_REGIONS:-100}" --out "$build/region_read.json"
fi
