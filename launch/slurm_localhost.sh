#!/usr/bin/env bash
# Prove launch/slurm.sbatch on a real, single-node Slurm on this machine (Debian/Ubuntu, as root):
# installs slurm-wlm + munge with apt, writes a localhost slurm.conf, starts munged, slurmctld and
# slurmd, submits a 2-task job (2 torchrun agents x 1 process, gloo) with sbatch --wait, checks its
# per-epoch losses against `distgnn train --nproc 2` on the same parts, and stops the daemons it started.
#
#   launch/slurm_localhost.sh [WORKDIR]      (default runs/slurm-test; needs distgnn's venv on PATH)
#
# Exits 0 when the job's metrics match; 77 (skip) when it cannot run here (not root, no apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="$(realpath -m "${1:-runs/slurm-test}")"
PYTHON="${PYTHON:-python}"
skip() { echo "launch/slurm_localhost.sh: skipped: $*"; exit 77; }
[[ "$(id -u)" == 0 ]] || skip "needs root (apt-get and the Slurm daemons)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || skip "no apt-get to install slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host="$(hostname -s)"
cpus="$(nproc)"; (( cpus >= 2 )) || cpus=2
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge "$WORK"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=distgnn-local
SlurmctldHost=$host
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

# munge: a key (apt usually creates one), then the daemon as its own user.
[[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
started=()
if ! pgrep -x munged >/dev/null; then runuser -u munge -- /usr/sbin/munged; started+=(munged); fi
stop() {
  [[ " ${started[*]} " == *" slurm "* ]] && { scontrol shutdown >/dev/null 2>&1 || true; }
  [[ " ${started[*]} " == *" munged "* ]] && { kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; }
}
trap stop EXIT
if ! pgrep -x slurmctld >/dev/null; then
  slurmctld && slurmd && started+=(slurm)
fi
for _ in $(seq 60); do
  state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
  [[ "$state" == idle* || "$state" == mix* ]] && break
  sleep 1
done
[[ "$state" == idle* || "$state" == mix* ]] || { echo "slurm node state: '$state'"; tail -5 /var/log/slurm/*.log; exit 1; }
echo "slurm $(sinfo -V | cut -d' ' -f2) up on $host ($cpus CPUs)"

# A tiny 2-part graph; the reference losses from --nproc 2; then the Slurm job.
"$PYTHON" -m distgnn partition --dataset "synthetic:nodes=200,edges=1200,features=8,classes=3,seed=5" \
  --parts 2 --out "$WORK/parts" --force --no-progress >/dev/null
args=(--partitions "$WORK/parts" --epochs 3 --dropout 0 --seed 3 --kernel reference --no-progress)
OMP_NUM_THREADS=1 "$PYTHON" -m distgnn train "${args[@]}" --nproc 2 --metrics-out "$WORK/nproc.jsonl"
rm -f "$WORK/slurm.jsonl"
OMP_NUM_THREADS=1 DISTGNN_NPROC_PER_NODE=1 RDZV_PORT="${RDZV_PORT:-29533}" \
  sbatch --wait --ntasks 2 --ntasks-per-node 2 --time 10 --output "$WORK/job-%j.out" \
  launch/slurm.sbatch "${args[@]}" --metrics-out "$WORK/slurm.jsonl"
cat "$WORK"/job-*.out | grep -v "^\s*$" | tail -n 5
"$PYTHON" - "$WORK/nproc.jsonl" "$WORK/slurm.jsonl" <<'PY'
import json, sys
nproc, slurm = ([json.loads(line)["loss"] for line in open(path)] for path in sys.argv[1:])
assert len(slurm) == 3 and slurm == nproc, f"slurm losses {slurm} != --nproc 2 losses {nproc}"
print(f"slurm job: 2 tasks, {len(slurm)} epochs, losses equal to --nproc 2: {slurm}")
PY
