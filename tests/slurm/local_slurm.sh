#!/usr/bin/env bash
# Starts a real, private Slurm cluster on this machine (munged, slurmctld, slurmd; one node,
# one partition) in a scratch folder, for the tests of slurm/ scripts. Source it:
#
#   source tests/slurm/local_slurm.sh   # sets SLURM_CONF and $work, defines fail, starts the daemons
#   ... sbatch --wait ...
#   stop_local_slurm                    # also runs on exit
#
# Needs root (munged and slurmd run as root here) and the Debian packages slurmctld,
# slurmd, slurm-client and munge (scripts/setup.sh installs them).
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "local_slurm.sh: needs root to start munged and slurmd" >&2
  exit 1
fi
slurm_dir="$(mktemp -d /tmp/cytonet-slurm.XXXXXX)"
mkdir -p "$slurm_dir/state" "$slurm_dir/spool"
host="$(hostname -s)"
# Ports from the scratch folder's name so parallel test runs do not collide.
port=$((17000 + $(cksum <<<"$slurm_dir" | cut -d' ' -f1) % 2000 * 2))
memory_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))

munged --force --socket="$slurm_dir/munge.sock" --key-file=/etc/munge/munge.key \
  --pid-file="$slurm_dir/munged.pid" --log-file="$slurm_dir/munged.log" --seed-file="$slurm_dir/munge.seed"

cat > "$slurm_dir/slurm.conf" <<CONF
ClusterName=cytonet-test
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$slurm_dir/munge.sock
CryptoType=crypto/munge
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/slurmctld.log
SlurmdLogFile=$slurm_dir/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
export SLURM_CONF="$slurm_dir/slurm.conf"

stop_local_slurm() {
  for daemon in slurmd slurmctld munged; do
    [[ -f "$slurm_dir/$daemon.pid" ]] && kill "$(cat "$slurm_dir/$daemon.pid")" 2>/dev/null || true
  done
  sleep 1
  rm -rf "$slurm_dir"
}
trap stop_local_slurm EXIT

slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  state="$(sinfo -h -o %T 2>/dev/null || true)"
  [[ "$state" == idle* ]] && break
  sleep 1
done
if [[ "$state" != idle* ]]; then
  echo "local Slurm did not come up (node state '$state'); logs:" >&2
  tail -n 20 "$slurm_dir"/*.log >&2
  exit 1
fi
echo "local Slurm up: $(sinfo -h -o '%P %D %C %T')" >&2

# The tests' scratch folder, and how they fail: with the jobs' output and Slurm's logs.
work="$slurm_dir/work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; tail -n 30 "$work"/*.out "$slurm_dir"/slurm*.log >&2 || true; exit 1; }
