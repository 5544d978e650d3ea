#!/usr/bin/env bash
# Submits an exl2 command to a Spark standalone cluster, in client mode: the driver runs here and prints progress.
#   submit/spark-submit-standalone.sh --master spark://HOST:7077 [OPTIONS] COMMAND [ARGS...]
#   --master URL          the standalone master (or $SPARK_MASTER)
#   --executor-cores N    CPU cores per executor, default 4. Each executor gets one GPU and runs one GPU task at a
#                         time; the cores serve its CPU work. Workers need cores for one executor per GPU.
#   --executor-memory M   JVM heap per executor, default 16g (tensors live off-heap or on the GPU)
# Each worker must announce its GPUs: start it with
#   SPARK_WORKER_OPTS="-Dspark.worker.resource.gpu.amount=<GPUs> \
#     -Dspark.worker.resource.gpu.discoveryScript=<exl2 checkout>/conf/getGpusResources.sh"
set -euo pipefail
# shellcheck source=spark-submit-common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/spark-submit-common.sh"

master=${SPARK_MASTER:-}
executor_cores=4
executor_memory=16g
wrapper_option() {
  case $1 in
    --master) master=${2:?--master needs a URL}; wrapper_shift=2 ;;
    --executor-cores) executor_cores=${2:?--executor-cores needs a number}; wrapper_shift=2 ;;
    --executor-memory) executor_memory=${2:?--executor-memory needs a size}; wrapper_shift=2 ;;
    *) return 1 ;;
  esac
}

parse_args "$@"
[[ $master == spark://* ]] || die "--master spark://HOST:PORT (or SPARK_MASTER) is required, got '${master}'"
spark_opts=(--master "$master" --deploy-mode client)
set_conf spark.executor.cores "$executor_cores"
set_conf spark.executor.memory "$executor_memory"
submit
