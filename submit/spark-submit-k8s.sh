#!/usr/bin/env bash
# Submits an exl2 command to Kubernetes, in cluster mode: driver and executors are pods of one container image.
#   submit/spark-submit-k8s.sh --master k8s://https://API-SERVER:443 --image IMAGE [OPTIONS] COMMAND [ARGS...]
#   --master URL          the API server (or $SPARK_MASTER)
#   --image IMAGE         container image with Spark 4.2 (Scala 2.13, Java 17), the NVIDIA container runtime's
#                         libraries, and this project at /opt/exl2-spark: exl2-spark-cluster.jar and conf/
#   --jar URI             the application jar, default local:///opt/exl2-spark/exl2-spark-cluster.jar (in the image)
#   --namespace NS        namespace (default: the context's)
#   --service-account SA  the driver's service account, which creates the executor pods
#   --num-executors N     executors, i.e. GPUs, default 2
#   --executor-cores N    CPU cores per executor, default 4
#   --executor-memory M   JVM heap per executor, default 16g
# Executors request nvidia.com/gpu through spark.executor.resource.gpu.vendor; conf/k8s-executor-pod-template.yaml
# adds what a GPU node pool usually needs (toleration, shared memory).
set -euo pipefail
# shellcheck source=spark-submit-common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/spark-submit-common.sh"

master=${SPARK_MASTER:-}
image=""
jar_uri=local:///opt/exl2-spark/exl2-spark-cluster.jar
namespace=""
service_account=""
num_executors=2
executor_cores=4
executor_memory=16g
wrapper_option() {
  case $1 in
    --master) master=${2:?--master needs a URL}; wrapper_shift=2 ;;
    --image) image=${2:?--image needs an image name}; wrapper_shift=2 ;;
    --jar) jar_uri=${2:?--jar needs a URI}; wrapper_shift=2 ;;
    --namespace) namespace=${2:?--namespace needs a name}; wrapper_shift=2 ;;
    --service-account) service_account=${2:?--service-account needs a name}; wrapper_shift=2 ;;
    --num-executors) num_executors=${2:?--num-executors needs a number}; wrapper_shift=2 ;;
    --executor-cores) executor_cores=${2:?--executor-cores needs a number}; wrapper_shift=2 ;;
    --executor-memory) executor_memory=${2:?--executor-memory needs a size}; wrapper_shift=2 ;;
    *) return 1 ;;
  esac
}

# inside the image the project lives at /opt/exl2-spark, as the template assumes
EXL2_CLUSTER_HOME=${EXL2_CLUSTER_HOME:-/opt/exl2-spark}
parse_args "$@"
[[ $master == k8s://* ]] || die "--master k8s://https://HOST:PORT (or SPARK_MASTER) is required, got '${master}'"
[[ -n $image ]] || die "--image IMAGE is required"
spark_opts=(--master "$master" --deploy-mode cluster)
set_conf spark.kubernetes.container.image "$image"
set_conf spark.executor.resource.gpu.vendor nvidia.com
set_conf spark.kubernetes.executor.podTemplateFile "$root/conf/k8s-executor-pod-template.yaml"
[[ -n $namespace ]] && set_conf spark.kubernetes.namespace "$namespace"
[[ -n $service_account ]] && set_conf spark.kubernetes.authenticate.driver.serviceAccountName "$service_account"
set_conf spark.executor.instances "$num_executors"
set_conf spark.executor.cores "$executor_cores"
set_conf spark.executor.memory "$executor_memory"
submit
