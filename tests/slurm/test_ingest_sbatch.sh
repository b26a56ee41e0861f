#!/usr/bin/env bash
# slurm/ingest.sbatch on a real local Slurm cluster with 2 tasks: the dataset equals the
# one a single process makes, and resubmitting the job skips every section.
#   tests/slurm/test_ingest_sbatch.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir="$(cd "$1" && pwd)"
build="$(cd "$2" && pwd)"
cytonet="$build/cli/cytonet"
source "$source_dir/tests/slurm/local_slurm.sh"

"$cytonet" phantom --out "$work/phantom" --brains 1 --sections 3 --width 1024 --height 768 --tile 256 --quiet
common=(--shard 512 --chunk 128 --no-sync)
"$cytonet" ingest "$work/phantom/study.json" --out "$work/reference" "${common[@]}" --quiet > /dev/null

export CYTONET="$cytonet" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for run in first resubmitted; do
  sbatch --wait --ntasks 2 --cpus-per-task 1 --output "$work/$run.out" \
    "$source_dir/slurm/ingest.sbatch" "$work/phantom/study.json" "$work/dataset" "${common[@]}" > /dev/null ||
    fail "$run job exited with an error"
done
grep -q "2 MPI ranks" "$work/first.out" || fail "the job did not run 2 MPI ranks"
grep -q "3 ingested, 0 skipped" "$work/first.out" || fail "first job did not ingest 3 sections"
grep -q "0 ingested, 3 skipped" "$work/resubmitted.out" || fail "resubmitted job did not skip the complete sections"
diff -r "$work/reference" "$work/dataset" > "$work/diff.txt" || fail "Slurm dataset differs from one process: $(head "$work/diff.txt")"
echo "PASS: sbatch with 2 MPI ranks made the same dataset as one process; resubmission skipped all 3 sections"
