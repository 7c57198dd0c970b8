#!/usr/bin/env bash
# Launch `distgnn train` with torchrun (torch's elastic agent) on one or several nodes.
#
#   one node:    launch/torchrun.sh --nproc 4 -- --partitions parts/ --model gcn
#   N nodes:     run the same command on every node, with the same rendezvous endpoint (host:port of
#                any one node, reachable from all), e.g. for 2 nodes x 4 processes:
#                NNODES=2 RDZV_ENDPOINT=node0:29500 launch/torchrun.sh --nproc 4 -- --partitions parts/
#
# Environment: NNODES (default 1), RDZV_ENDPOINT (default $MASTER_ADDR:${MASTER_PORT:-29500}), RDZV_ID
# (a job id, the same on every node), MAX_RESTARTS (default 0), PYTHON (default python),
# DISTGNN_PREBUILD=0 to skip compiling the C++ kernels before the workers start.
# The partition count must equal NNODES x nproc; every node needs meta.json and its own part-<rank>.
# Pin the network interface with GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME when nodes have several.
set -euo pipefail
NPROC=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nproc) NPROC="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "launch/torchrun.sh: unknown option $1 (put distgnn train options after --)" >&2; exit 2 ;;
  esac
done
NNODES="${NNODES:-1}"
# Restarts (MAX_RESTARTS) need a fresh store per attempt: torch's shared rendezvous store keeps the dead
# group's addresses (pytorch/pytorch#135712).
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE="${TORCH_DISABLE_SHARE_RDZV_TCP_STORE:-1}"
PYTHON="${PYTHON:-python}"
# Once per node, before any worker exists. The cache check imports no torch (a fraction of a second);
# the build command does (seconds on a busy node), so it runs only when the check finds no build.
if [[ "${DISTGNN_PREBUILD:-1}" != 0 ]] && ! "$PYTHON" -m distgnn.kernels.cache; then
  "$PYTHON" -m distgnn.kernels.build --quiet \
    || echo "launch/torchrun.sh: the C++ kernels did not build; workers use another implementation" >&2
fi
if [[ "$NNODES" == 1 ]]; then
  exec torchrun --standalone --nnodes 1 --nproc_per_node "$NPROC" \
    --max_restarts "${MAX_RESTARTS:-0}" -m distgnn train "$@"
fi
if [[ -z "${RDZV_ENDPOINT:-}" && -n "${MASTER_ADDR:-}" ]]; then
  RDZV_ENDPOINT="$MASTER_ADDR:${MASTER_PORT:-29500}"
fi
exec torchrun --nnodes "$NNODES" --nproc_per_node "$NPROC" \
  --rdzv_backend c10d --rdzv_endpoint "${RDZV_ENDPOINT:?set RDZV_ENDPOINT=host:port for multi-node runs}" \
  --rdzv_id "${RDZV_ID:-distgnn}" --max_restarts "${MAX_RESTARTS:-0}" -m distgnn train "$@"
