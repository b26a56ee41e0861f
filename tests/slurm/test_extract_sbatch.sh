#!/usr/bin/env bash
# slurm/extract.sbatch on a real local Slurm cluster with 2 tasks: the features equal those
# one process extracts, and resubmitting the job leaves the finished array alone.
#   tests/slurm/test_extract_sbatch.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir="$(cd "$1" && pwd)"
build="$(cd "$2" && pwd)"
cytonet="$build/cli/cytonet"
source "$source_dir/tests/slurm/local_slurm.sh"

"$cytonet" phantom --out "$work/phantom" --brains 1 --sections 2 --width 2048 --height 1536 --quiet
"$cytonet" ingest "$work/phantom/study.json" --out "$work/ds" --no-sync --quiet > /dev/null
"$cytonet" index "$work/phantom/study.json" --dataset "$work/ds" --patch-size 128 > /dev/null
# A randomly initialised network: extraction does not care where the weights came from.
options=(--model small --seed 3 --level 1 --patch-size 64 --chunk-rows 16)
"$cytonet" extract --dataset "$work/ds" --name reference "${options[@]}" --torch-threads 1 --quiet > /dev/null

export CYTONET="$cytonet" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for run in first resubmitted; do
  sbatch --wait --ntasks 2 --cpus-per-task 1 --output "$work/$run.out" \
    "$source_dir/slurm/extract.sbatch" "$work/ds" slurm "${options[@]}" > /dev/null ||
    fail "$run job exited with an error"
done
grep -q "on 2 rank(s)" "$work/first.out" || fail "the job did not run 2 ranks"
grep -q "already complete" "$work/resubmitted.out" || fail "the resubmitted job did not find the array complete"
cmp "$work/ds/features/reference/c/0/0" "$work/ds/features/slurm/c/0/0" ||
  fail "the Slurm job's features differ from one process's"
echo "PASS: sbatch with 2 MPI ranks extracted the features of one process; resubmission left them alone"
