#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on built-in data:
#
#   1. `cytonet phantom` writes a small synthetic study at true scale: 3 brains × 4 coronal
#      sections of 9216 × 8192 px at 16 µm/px (cortex 2–3 mm thick, cells at their size
#      in µm), as tiled pyramidal BigTIFF and HDF5 slides, with midline points, transforms
#      to MNI space, the areas' adjacency graph and 16 layer masks per section;
#   2. `cytonet ingest` turns it into the dataset (OME-Zarr 0.5 pyramids, sharded Zarr v3);
#      a second run shows that complete sections are skipped;
#   3. `cytonet index` builds the sampling-point index (MNI coordinates, tissue filter) and
#      `cytonet query` finds points near an MNI position;
#   4. `cytonet info` prints what was made, and a level-1 section goes to build/section.png;
#   5. the training loader: `cytonet sample` draws plain and augmented patches side by side
#      into build/patches.png, and `cytonet bench-loader` times the loader;
#   6. `cytonet train` pretrains the small ResNet with SpatialNCE for 400 steps on brains
#      PB01 and PB02 (256² px patches at 16 µm/px: 4 mm, the cortical depth, as the paper's
#      2048² at 2 µm/px); PB03 stays out of pretraining;
#   7. `cytonet report` extracts the pretrained and a random-init network's features into
#      the dataset (features/report-*), probes the areas (seen brain PB01: trained on
#      sections 1 and 3, tested on 2 and 4; transfer brain PB02; unseen brain PB03) beside
#      intensity and MNI baselines, fine-tunes the probe (3 epochs, from the pretrained
#      weights and from scratch), segments layers with a 1 × 1 convolution on 1–100 % of
#      the masks, regresses MNI position and laminar properties, clusters, and writes
#      build/main-job/report/report.md, report.json and the plots.
#
# CYTONET_RUN_BENCH=1 also runs the region-read benchmark of docs/benchmarks.md.
# CYTONET_SCALE=gpu runs the larger configuration for a GPU node (docs/eval.md): 4 brains ×
# 8 sections at 8 µm/px, ResNet-50 on 512² px patches (4 mm) in bf16 for 3000 steps,
# extraction on the GPU, into build/main-job-gpu.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build="${CYTONET_BUILD:-$root/build}"
venv="${CYTONET_VENV:-$HOME/.cache/cytonet/venv}"
cytonet="$build/cli/cytonet"
scale="${CYTONET_SCALE:-cpu}"
case "$scale" in
  cpu)
    main_job="$build/main-job"
    phantom_args=(--brains 3 --sections 4 --width 9216 --height 8192 --pixel-size-um 16 --formats tiff,hdf5 --masks 16)
    pretraining_brains="PB01, PB02" model=small patch=256 batch=64 steps=400 device=cpu precision=fp32 loaders=1
    fine_tune_epochs=3 ;;
  gpu)
    main_job="$build/main-job-gpu"
    phantom_args=(--brains 4 --sections 8 --width 18432 --height 16384 --pixel-size-um 8 --formats tiff,hdf5
      --masks 8 --mask-size 512)
    pretraining_brains="PB01, PB02, PB03" model=resnet50 patch=512 batch=128 steps=3000 device=cuda precision=bf16
    loaders=8 fine_tune_epochs=10 ;;
  *) echo "CYTONET_SCALE is cpu or gpu, not '$scale'" >&2; exit 2 ;;
esac
study="$main_job/phantom"
dataset="$main_job/dataset"
run_dir="$main_job/run"

# A changed phantom remakes the study, the dataset and the run; a changed training
# configuration remakes the run. Otherwise everything is reused (the run resumes).
mkdir -p "$main_job"
if [[ "$(cat "$main_job/phantom.args" 2>/dev/null)" != "${phantom_args[*]}" ]]; then
  rm -rf "$study" "$dataset" "$run_dir"
  "$cytonet" phantom --out "$study" "${phantom_args[@]}"
  echo "${phantom_args[*]}" > "$main_job/phantom.args"
fi
"$cytonet" ingest "$study/study.json" --out "$dataset"
"$cytonet" ingest "$study/study.json" --out "$dataset" --quiet   # resumable: all skipped
# 256 px at 16 µm/px: the 4 mm tissue patch of the paper (2048 px at 2 µm/px).
"$cytonet" index "$study/study.json" --dataset "$dataset" --patch-size 256
"$cytonet" verify "$dataset"
"$cytonet" info "$dataset"
"$cytonet" query "$dataset" --mni 52,11,48 --radius 5 --limit 5
first="$(cd "$dataset/sections" && ls -d */*/ | head -1)"
"$cytonet" read "$dataset" --array "sections/${first%/}/1" --box 0:4096,0:4608 --out "$build/section.png"
"$cytonet" sample "$dataset" --out "$build/patches.png" --count 12 --size "$patch" --level 0
"$cytonet" bench-loader "$dataset" --size "$patch" --level 0 --batches 10

# 6. Pretraining on all brains but the last, the report's unseen brain.
yaml_quoted() { local q="'"; printf "'%s'" "${1//$q/$q$q}"; }   # any path as a YAML string
config="$(cat <<YAML
# cytonet train --config: every key in docs/train.md and schemas/train.schema.json
dataset: $(yaml_quoted "$dataset")
run_dir: $(yaml_quoted "$run_dir")
brains: [$pretraining_brains]
model: $model
level: 0
patch_size: $patch
channels_last: true
batch_size: $batch
steps: $steps
device: $device
precision: $precision
base_lr: 1.0
schedule: cosine
warmup_steps: 20
checkpoint_every: 100
log_every: 25
loader_threads: $loaders
seed: 1
YAML
)"
if [[ "$(cat "$main_job/train.yaml" 2>/dev/null)" != "$config" ]]; then
  rm -rf "$run_dir"
  echo "$config" > "$main_job/train.yaml"
fi
"$cytonet" train --config "$main_job/train.yaml"

# 7. The evaluation report (on a GPU node the features are extracted on the GPU first; the
#    report finds them complete).
if [[ "$device" == cuda ]]; then
  "$cytonet" extract --dataset "$dataset" --checkpoint "$run_dir" --name report-pretrained --device cuda
  "$cytonet" extract --dataset "$dataset" --checkpoint "$run_dir" --name report-random-init --random-init --seed 0 \
    --device cuda
fi
"$cytonet" report --dataset "$dataset" --checkpoint "$run_dir" --out "$main_job/report" \
  --masks "$study/masks" --areas "$study/areas.json" --seed 0 --overwrite-features \
  --fine-tune-epochs "$fine_tune_epochs" --device "$device"

echo "dataset: $dataset; to look at: a section at level 1 in $build/section.png, plain and" \
  "augmented training patches in $build/patches.png, and the evaluation report" \
  "$main_job/report/report.md (numbers in report.json, plots beside it; weights for Python:" \
  "$run_dir/weights.pt)"

if [[ "${CYTONET_RUN_BENCH:-0}" == 1 ]]; then
  data="$build/bench-data/section-16384-lz4-noshuffle"
  "$venv/bin/python" "$root/benchmarks/region_read.py" --build "$build" --data "$data" \
    --regions "${CYTONET_BENCH_REGIONS:-100}" --out "$build/region_read.json"
fi
