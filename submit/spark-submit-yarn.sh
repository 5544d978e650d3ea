#!/usr/bin/env bash
# Submits an exl2 command to YARN (HADOOP_CONF_DIR or YARN_CONF_DIR must point at the cluster's configuration).
#   submit/spark-submit-yarn.sh [OPTIONS] COMMAND [ARGS...]
#   --deploy-mode MODE    cluster (default: the driver runs in the application master) or client
#   --num-executors N     executors, i.e. GPUs (spark.executor.instances), default: dynamic allocation
#   --executor-cores N    CPU cores per executor, default 4
#   --executor-memory M   JVM heap per executor, default 16g
#   --queue NAME          YARN queue
# YARN schedules the GPUs (yarn.io/gpu, which Spark requests for spark.executor.resource.gpu.amount); the discovery
# script travels with the application (--files) and runs in each executor's container.
set -euo pipefail
# shellcheck source=spark-submit-common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/spark-submit-common.sh"

deploy_mode=cluster
num_executors=""
executor_cores=4
executor_memory=16g
queue=""
wrapper_option() {
  case $1 in
    --deploy-mode) deploy_mode=${2:?--deploy-mode needs cluster or client}; wrapper_shift=2 ;;
    --num-executors) num_executors=${2:?--num-executors needs a number}; wrapper_shift=2 ;;
    --executor-cores) executor_cores=${2:?--executor-cores needs a number}; wrapper_shift=2 ;;
    --executor-memory) executor_memory=${2:?--executor-memory needs a size}; wrapper_shift=2 ;;
    --queue) queue=${2:?--queue needs a name}; wrapper_shift=2 ;;
    *) return 1 ;;
  esac
}

parse_args "$@"
[[ $deploy_mode == cluster || $deploy_mode == client ]] || die "--deploy-mode must be cluster or client"
spark_opts=(--master yarn --deploy-mode "$deploy_mode" --files "$root/conf/getGpusResources.sh")
[[ -n $queue ]] && spark_opts+=(--queue "$queue")
set_conf spark.executor.resource.gpu.discoveryScript ./getGpusResources.sh
set_conf spark.executor.cores "$executor_cores"
set_conf spark.executor.memory "$executor_memory"
[[ -n $num_executors ]] && set_conf spark.executor.instances "$num_executors"
submit
