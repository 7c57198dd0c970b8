#!/usr/bin/env bash
# Launch `distgnn train` with torchrun (torch's elastic agent) on one or several nodes.
#
#   single node:  launch/torchrun.sh --nproc 4 -- --partitions parts/ --model gcn
#   multi-node:   on every node, with the same rendezvous endpoint:
#                 NNODES=2 RDZV_ENDPOINT=node0:29500 launch/torchrun.sh --nproc 4 -- --partitions parts/
#
# The partition count must equal NNODES x nproc. Backend: NCCL on CUDA, gloo on CPU (chosen by distgnn).
set -euo pipefail
NPROC=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nproc) NPROC="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "launch/torchrun.sh: unknown option $1 (put distgnn train options after --)" >&2; exit 2 ;;
  esac
done
NNODES="${NNODES:-1}"
if [[ "$NNODES" == 1 ]]; then
  exec torchrun --standalone --nnodes 1 --nproc_per_node "$NPROC" -m distgnn train "$@"
fi
exec torchrun --nnodes "$NNODES" --nproc_per_node "$NPROC" \
  --rdzv_backend c10d --rdzv_endpoint "${RDZV_ENDPOINT:?set RDZV_ENDPOINT=host:port for multi-node runs}" \
  --rdzv_id "${RDZV_ID:-distgnn}" -m distgnn train "$@"
