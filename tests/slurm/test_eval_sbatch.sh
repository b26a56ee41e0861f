#!/usr/bin/env bash
# slurm/eval.sbatch on a real local Slurm cluster with 2 tasks: both feature sets are
# extracted on 2 MPI ranks, the report finds them complete and writes report.json and its
# plots, and its numbers equal those of a report run by one process from scratch.
#   tests/slurm/test_eval_sbatch.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir="$(cd "$1" && pwd)"
build="$(cd "$2" && pwd)"
cytonet="$build/cli/cytonet"
source "$source_dir/tests/slurm/local_slurm.sh"

"$cytonet" phantom --out "$work/phantom" --brains 2 --sections 2 --width 3072 --height 2048 --masks 3 \
  --mask-size 128 --quiet
for copy in ds reference; do
  "$cytonet" ingest "$work/phantom/study.json" --out "$work/$copy" --no-sync --quiet > /dev/null
  "$cytonet" index "$work/phantom/study.json" --dataset "$work/$copy" --patch-size 128 > /dev/null
done
cat > "$work/train.json" <<JSON
{"dataset": "$work/ds", "run_dir": "$work/run", "model": "small", "level": 1, "patch_size": 64,
 "batch_size": 8, "steps": 3, "checkpoint_every": 3, "torch_threads": 1, "loader_threads": 1,
 "brains": ["PB01"], "seed": 2}
JSON
"$cytonet" train --config "$work/train.json" > /dev/null

export CYTONET="$cytonet" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
sbatch --wait --ntasks 2 --cpus-per-task 1 --output "$work/eval.out" "$source_dir/slurm/eval.sbatch" \
  "$work/ds" "$work/run" "$work/report" --masks "$work/phantom/masks" --areas "$work/phantom/areas.json" \
  > /dev/null || fail "the eval job exited with an error"
[[ "$(grep -c "on 2 rank(s)" "$work/eval.out")" == 2 ]] || fail "the job did not extract both feature sets on 2 ranks"
grep -q "extracting pretrained features" "$work/eval.out" || fail "the report did not run"
[[ -s "$work/report/report.json" && -s "$work/report/layers.png" ]] || fail "no report.json or plots"
# The same report by one process from scratch: the same numbers (features from 2 ranks
# equal one process's, bit for bit, with one torch thread each).
"$cytonet" report --dataset "$work/reference" --checkpoint "$work/run" --out "$work/one" --threads 1 \
  --masks "$work/phantom/masks" --areas "$work/phantom/areas.json" 2> /dev/null > /dev/null
python3 - "$work/report/report.json" "$work/one/report.json" <<'PY' || fail "the reports differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for r in (a, b):
    del r["setup"]["dataset"]
assert a == b, [k for k in a if a[k] != b.get(k)]
PY
echo "PASS: sbatch extracted both feature sets on 2 MPI ranks and wrote the report one process writes"
