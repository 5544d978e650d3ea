#!/usr/bin/env bash
# Spark GPU discovery script (spark.executor.resource.gpu.discoveryScript, and
# spark.worker.resource.gpu.discoveryScript on standalone workers). Prints this host's GPUs as Spark expects:
#   {"name":"gpu","addresses":["0","1",...]}
# The addresses are nvidia-smi's indices, which are PCI bus order; executors run with
# CUDA_DEVICE_ORDER=PCI_BUS_ID (conf/spark-defaults.conf.template) so CUDA numbers the devices the same way.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "getGpusResources.sh: nvidia-smi not found on ${HOSTNAME:-this host}; no NVIDIA driver here?" >&2
  exit 1
fi
indices=$(nvidia-smi --query-gpu=index --format=csv,noheader)
addresses=""
for i in $indices; do
  addresses+="${addresses:+,}\"$i\""
done
echo "{\"name\":\"gpu\",\"addresses\":[$addresses]}"
