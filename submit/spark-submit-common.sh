# Options of every submit/spark-submit-*.sh wrapper (before the exl2 command; "--" ends them):
#   -h, --help         this text
#   --dry-run          print the spark-submit command line instead of running it (nothing is built)
#   --conf KEY=VALUE   a Spark setting; wins over conf/spark-defaults.conf.template and the wrapper's own
#   --name NAME        application name (default exl2-spark)
# The rest is the exl2 command line, e.g. convert -i hdfs:///models/llama -o hdfs:///jobs/llama -b 4.0
# Environment:
#   SPARK_HOME         the Spark to submit with ($SPARK_HOME/bin/spark-submit; else spark-submit on PATH)
#   EXL2_CLUSTER_HOME  where this checkout's conf/ folder is on the cluster's hosts, replacing /opt/exl2-spark in
#                      the template (default: this checkout, i.e. a shared file system or the same path everywhere)

# Sourced by the wrappers: what submitting exl2-spark to any cluster manager has in common. A wrapper defines
# wrapper_option (its own options; returns 1 for one it does not know), calls parse_args "$@", adds its settings
# with set_conf and spark_opts, then calls submit.

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
app_jar=$root/job/target/exl2-spark-cluster.jar
main_class=org.exl2spark.cli.Exl2

dry_run=false
app_name=exl2-spark
spark_opts=()    # spark-submit options other than --conf
conf_keys=()     # setting names in the order they were first set
declare -A conf_values
declare -A user_confs
app_args=()

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# The comment block at the top of the wrapper, then the one of this file.
usage() {
  local f
  for f in "$0" "${BASH_SOURCE[0]}"; do
    awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$f"
  done
}

# set_conf KEY VALUE: a setting of the command line; the user's --conf for the same key wins.
set_conf() {
  if [[ -z ${conf_values[$1]+set} ]]; then
    conf_keys+=("$1")
  fi
  if [[ -n ${user_confs[$1]+set} ]]; then
    conf_values[$1]=${user_confs[$1]}
  else
    conf_values[$1]=$2
  fi
}

# The settings every exl2 job runs with, from conf/spark-defaults.conf.template ("key  value" lines).
template_confs() {
  local cluster_home=${EXL2_CLUSTER_HOME:-$root} key value
  while read -r key value; do
    [[ -z $key || $key == \#* ]] && continue
    set_conf "$key" "${value//\/opt\/exl2-spark/$cluster_home}"
  done <"$root/conf/spark-defaults.conf.template"
}

parse_args() {
  while (($#)); do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --dry-run) dry_run=true; shift ;;
      --conf)
        (($# >= 2)) && [[ $2 == *=* ]] || die "--conf needs KEY=VALUE"
        user_confs[${2%%=*}]=${2#*=}; shift 2 ;;
      --name) (($# >= 2)) || die "--name needs a value"; app_name=$2; shift 2 ;;
      --) shift; break ;;
      *) wrapper_option "$@" && shift "$wrapper_shift" && continue; break ;;
    esac
  done
  app_args=("$@")
  ((${#app_args[@]})) || die "no exl2 command given (e.g. convert -i MODEL -o JOB_DIR -b 4.0); see --help of exl2"
  template_confs
}

submit() {
  local key
  for key in "${!user_confs[@]}"; do
    set_conf "$key" "${user_confs[$key]}"
  done
  local spark_submit=spark-submit
  [[ -n ${SPARK_HOME:-} ]] && spark_submit=$SPARK_HOME/bin/spark-submit
  local cmd=("$spark_submit" ${spark_opts[@]+"${spark_opts[@]}"} --name "$app_name" --class "$main_class")
  for key in "${conf_keys[@]}"; do
    cmd+=(--conf "$key=${conf_values[$key]}")
  done
  cmd+=("${jar_uri:-$app_jar}" "${app_args[@]}")
  if $dry_run; then
    printf '%q ' "${cmd[@]}"
    printf '\n'
    return 0
  fi
  if [[ -z ${jar_uri:-} && ! -f $app_jar ]]; then
    echo "$(basename "$0"): building $app_jar ..." >&2
    (cd "$root" && mvn -B -q -DskipTests package -pl job -am) >&2
  fi
  exec "${cmd[@]}"
}
