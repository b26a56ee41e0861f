#!/usr/bin/env bash
# slurm/pretrain.sbatch on a real local Slurm cluster with 2 CPU ranks: a job preempted
# mid-run by Slurm's signal checkpoints, requeues itself, resumes and ends with exactly the
# weights of a job that ran straight through.
#   tests/slurm/test_pretrain_sbatch.sh SOURCE_DIR BUILD_DIR PYTHON
set -euo pipefail
source_dir="$(cd "$1" && pwd)"
build="$(cd "$2" && pwd)"
python="$3"
cytonet="$build/cli/cytonet"
source "$source_dir/tests/slurm/local_slurm.sh"

"$cytonet" phantom --out "$work/phantom" --brains 2 --sections 1 --width 2048 --height 1536 --quiet
"$cytonet" ingest "$work/phantom/study.json" --out "$work/dataset" --quiet --no-sync > /dev/null
"$cytonet" index "$work/phantom/study.json" --dataset "$work/dataset" --patch-size 128 > /dev/null
write_config() {  # RUN_DIR
  cat <<YAML
dataset: $work/dataset
run_dir: $1
model: small
level: 1
patch_size: 64
batch_size: 8
steps: 150
base_lr: 0.5
checkpoint_every: 1000
torch_threads: 1
loader_threads: 1
collective_timeout_s: 60
seed: 3
YAML
}
write_config "$work/straight" > "$work/straight.yaml"
write_config "$work/preempted" > "$work/preempted.yaml"

export CYTONET="$cytonet"
# The script asks for GPU nodes; this node has 2 CPUs and no GPU.
cpu_job=(--nodes 1 --ntasks-per-node 2 --cpus-per-task 1 --gpus-per-node 0)
sbatch --wait "${cpu_job[@]}" --output "$work/straight.out" \
  "$source_dir/slurm/pretrain.sbatch" "$work/straight.yaml" > /dev/null || fail "the uninterrupted job failed"
grep -q "finished 150 steps on rank 1 of 2" "$work/straight.out" || fail "the job did not run 2 ranks"

job=$(sbatch --parsable "${cpu_job[@]}" --output "$work/preempted.out" \
  "$source_dir/slurm/pretrain.sbatch" "$work/preempted.yaml")
# Once it has taken 20 steps, signal the job's ranks as --signal=USR1@… does before the limit.
for _ in $(seq 600); do
  [[ -f "$work/preempted/metrics.jsonl" ]] && (($(wc -l < "$work/preempted/metrics.jsonl") >= 20)) && break
  sleep 0.1
done
(($(wc -l < "$work/preempted/metrics.jsonl") >= 20)) || fail "the job did not start training"
scancel --signal=USR1 "$job"
# The job checkpoints, exits 75, is requeued, resumes and finishes. Slurm makes a requeued
# job wait about two minutes before it is eligible; the test moves its begin time to now.
started=$SECONDS nudged=0
for _ in $(seq 300); do
  info=$(scontrol show job "$job" 2>/dev/null || true)
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2)
  [[ "$state" == COMPLETED || "$state" == FAILED || "$state" == CANCELLED ]] && break
  if [[ "$state" == PENDING && $nudged == 0 ]] && grep -q 'Restarts=1' <<<"$info"; then
    scontrol update jobid="$job" StartTime=now && nudged=1
  fi
  sleep 1
done
echo "preempted job: requeued and finished $((SECONDS - started)) s after the signal" >&2
[[ "$state" == COMPLETED ]] || fail "the preempted job ended $state"
restarts=$(scontrol show job "$job" | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
((restarts == 1)) || fail "the job restarted $restarts times, not once"
grep -q "preempted; checkpoint written, requeueing" "$work/preempted.out" || fail "no preemption in the job output"
grep -q "resuming from" "$work/preempted.out" || fail "the requeued job did not resume"
"$python" - "$work/straight/weights.pt" "$work/preempted/weights.pt" <<'PY' || fail "weights differ"
import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert sorted(a) == sorted(b)
different = [k for k in a if not torch.equal(a[k], b[k])]
assert not different, different
PY
echo "PASS: preempted at step $(grep -o 'preempted at step [0-9]*' "$work/preempted.out" | head -1 | cut -d' ' -f4)," \
  "requeued once, resumed; weights equal the uninterrupted 2-rank job's"
