#!/usr/bin/env bash
# Spark GPU discovery script (spark.executor.resource.gpu.discoveryScript, and
# spark.worker.resource.gpu.discoveryScript on standalone workers). Prints this host's GPUs as Spark expects:
#   {"name":"gpu","addresses":["0","1",...]}
# The addresses are CUDA device ordinals, which is what a task binds to (pipeline/GpuAssignment):
# - without CUDA_VISIBLE_DEVICES, nvidia-smi's indices, which are PCI bus order; executors run with
#   CUDA_DEVICE_ORDER=PCI_BUS_ID (conf/spark-defaults.conf.template) so CUDA numbers the devices the same way;
# - with CUDA_VISIBLE_DEVICES (a container runtime or an admin giving this worker some of the GPUs; executors
#   inherit it), CUDA sees only the listed devices, numbered 0..n-1 in list order, up to the first entry that
#   names no GPU here; so those ordinals. Empty, or -1, means no GPU. Entries are indices, UUIDs (GPU-...) or
#   MIG instances (MIG-...).
# No GPU prints an empty list; no nvidia-smi (no NVIDIA driver) is an error.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "getGpusResources.sh: nvidia-smi not found on ${HOSTNAME:-this host}; no NVIDIA driver here?" >&2
  exit 1
fi
# "0, GPU-8f3c..." per GPU; a driver without GPUs says "No devices were found" and fails
if ! gpus=$(nvidia-smi --query-gpu=index,uuid --format=csv,noheader 2>&1); then
  if [[ $gpus != *"No devices were found"* ]]; then
    echo "getGpusResources.sh: nvidia-smi failed on ${HOSTNAME:-this host}: $gpus" >&2
    exit 1
  fi
  gpus=""
fi

ordinals=()
if [[ -z ${CUDA_VISIBLE_DEVICES+set} ]]; then
  while IFS=', ' read -r index _; do
    [[ $index =~ ^[0-9]+$ ]] && ordinals+=("$index")
  done <<<"$gpus"
else
  IFS=',' read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"
  for entry in "${visible[@]}"; do
    entry=${entry// /}
    found=""
    while IFS=', ' read -r index uuid; do
      # an index, or a GPU UUID or its prefix, as CUDA accepts them
      if [[ -n $entry && ( $entry == "$index" || ( $entry == GPU-* && $uuid == "$entry"* ) ) ]]; then
        found=yes
      fi
    done <<<"$gpus"
    # a MIG instance is not in nvidia-smi's GPU list; CUDA shows it as one device
    [[ $entry == MIG-* ]] && found=yes
    [[ -z $found ]] && break
    ordinals+=("${#ordinals[@]}")
  done
fi

addresses=""
for o in ${ordinals[@]+"${ordinals[@]}"}; do
  addresses+="${addresses:+,}\"$o\""
done
echo "{\"name\":\"gpu\",\"addresses\":[$addresses]}"
