# Sourced by tools/gpu-run.sh --spark (its variables: repo bundle stage lib jdk mvn_flags; its functions:
# runtime_tarballs, jcuda_driver_natives). Builds BUNDLE/a and BUNDLE/b, two halves of what `exl2 convert` in an
# embedded local Spark needs on the device machine, each small enough for one device call (64 MiB with the checkout).
a="$bundle/a"
b="$bundle/b"
rm -rf "$a" "$b"
runtime_tarballs "$bundle/cache" "$bundle/cache"
mkdir -p "$a" "$b"
cp "$bundle/cache/jre.tar.xz" "$bundle/cache/openblas.tar.xz" "$a/"
# xz -3, not -9: the ~330 MB of stored jars took over 10 minutes at -9 on the busy 2-core build machine, 35 s of CPU
# at -3 for half A (35.6 MB)
pack() {
  xz -3 -T0
}

# What a local-mode RDD job never loads (measured: docs/BENCHMARKS.md): the key-value stores of Spark's history and
# shuffle services, ZooKeeper (standalone-master recovery), Python bridges, TLS natives, other platforms' transports,
# and icu4j (spark-sql's collations).
prune_spark_jars() {
  rm -f "$1"/rocksdbjni-*.jar "$1"/leveldbjni-all-*.jar "$1"/icu4j-*.jar "$1"/netty-tcnative-*.jar \
    "$1"/netty-transport-native-kqueue-*.jar "$1"/netty-transport-classes-kqueue-*.jar \
    "$1"/netty-transport-native-epoll-*-linux-aarch_64.jar "$1"/netty-transport-native-epoll-*-linux-riscv64.jar \
    "$1"/curator-*.jar "$1"/zookeeper-*.jar "$1"/py4j-*.jar "$1"/pickle-*.jar
}

# Drops the native libraries of other platforms from a jar ($2: an egrep pattern of the paths kept).
keep_natives() {
  local drop
  drop=$(unzip -Z1 "$1" | grep -E '\.(so|dll|dylib|jnilib|a)$' | grep -Ev "$2" || true)
  if [ -n "$drop" ]; then
    printf '%s\n' "$drop" | zip -q -d "$1" -@ >/dev/null
  fi
}

# Rewrites a jar with its entries stored, not deflated: xz then compresses the whole tarball better.
store_jar() {
  local dir
  dir=$(mktemp -d -p "$stage")
  unzip -q -o "$1" -d "$dir"
  rm -f "$1"
  (cd "$dir" && zip -q -0 -r -X "$1" .)
  rm -rf "$dir"
}

echo "resolving spark-core's runtime class path" >&2
jars="$stage/jars"
mkdir -p "$jars"
mvn -q -B $mvn_flags -f "$repo/tools/spark-core-runtime/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$jars" >&2
for j in "$jars"/*.jar; do
  if [ ! -f "$lib/$(basename "$j")" ]; then
    echo "gpu-run.sh: $(basename "$j") is on spark-core's class path but not in $lib (the job's own versions);" \
      "pin its version in tools/spark-core-runtime/pom.xml" >&2
    exit 1
  fi
done
prune_spark_jars "$jars"
cp "$repo/job/target/exl2-spark.jar" "$repo/kernels/target/exl2-spark-kernels-"*.jar "$jars/"
cp "$lib"/picocli-*.jar "$lib"/tokenizers-*.jar "$lib"/api-*.jar "$lib"/jna-[0-9]*.jar "$lib"/blas-*.jar \
  "$lib"/lapack-*.jar "$lib"/arpack_combined_all-*.jar "$lib"/jcuda-[0-9]*.jar "$jars/"
jcuda_driver_natives "$jars"
keep_natives "$jars"/tokenizers-*.jar 'native/lib/linux-x86_64/'
keep_natives "$jars"/zstd-jni-*.jar '^linux/amd64/'
keep_natives "$jars"/snappy-java-*.jar '/Linux/x86_64/'
keep_natives "$jars"/lz4-java-*.jar '/linux/amd64/'
keep_natives "$jars"/jna-[0-9]*.jar '/linux-x86-64/'
for j in "$jars"/*.jar; do
  store_jar "$j"
done
ls "$jars" > "$b/classpath.txt"

# half A: the runtime, OpenBLAS and most jars (58.8 MB); half B: Hadoop's client, our jars, JCuda, netlib, the model
# and the eval text (59.7 MB); each call also carries the checkout (~1.7 MB) and must stay under 64 MiB
mkdir -p "$stage/a/jars" "$stage/b/jars"
for j in "$jars"/*.jar; do
  case $(basename "$j") in
    hadoop-client-*|exl2-spark*|tokenizers-*|jcuda*|blas-*|lapack-*|arpack*|picocli-*|api-*|jna-*) mv "$j" "$stage/b/jars/" ;;
    *) mv "$j" "$stage/a/jars/" ;;
  esac
done
tar -C "$stage/a" -cf - jars | pack > "$a/spark-a.tar.xz"
tar -C "$stage/b" -cf - jars | pack > "$b/spark-b.tar.xz"

model=${TINY_MODEL:-$repo/../shared/models/tiny-llama-16m}
mkdir -p "$stage/data"
cp -r "$model" "$stage/data/model"
cp "$repo/../shared/eval/heldout.txt" "$stage/data/heldout.txt"
chmod -R u+w "$stage/data"
tar -C "$stage" -cf - data | pack > "$b/data.tar.xz"
cp "$repo/conf/log4j2.properties" "$repo/conf/jvm-flags.txt" "$b/"

cat > "$a/unpack.sh" <<'EOF'
#!/usr/bin/env bash
# Device call 1: unpacks the Java runtime, OpenBLAS and half A of the class path under /tmp/exl2-spark, which the machine
# keeps while it stays warm (about 30 s after a call): send call 2 (b/e2e.sh or b/exl2.sh) right after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=/tmp/exl2-spark
rm -rf "$work"
mkdir -p "$work"
xz -dc "$here/jre.tar.xz" | tar -C "$work" -xf -
xz -dc "$here/spark-a.tar.xz" | tar -C "$work" -xf -
mkdir -p "$work/native"
xz -dc "$here/openblas.tar.xz" | tar -C "$work/native" -xf -
touch "$work/a.done"
echo "unpacked: $(ls "$work/jars" | wc -l) jars, $(du -sh "$work" | cut -f1) in $work"
EOF

cat > "$b/exl2.sh" <<'EOF'
#!/usr/bin/env bash
# Device call 2: the exl2 command line ("$@") on the runtime of call 1 (a/unpack.sh) and this half's jars, in an
# embedded local Spark. Unpacks this half under /tmp/exl2-spark once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=/tmp/exl2-spark
if [ ! -f "$work/a.done" ]; then
  echo "exl2.sh: $work holds no runtime: run a/unpack.sh in the device call just before this one" \
    "(the machine keeps /tmp only while warm)" >&2
  exit 1
fi
if [ ! -f "$work/b.done" ]; then
  xz -dc "$here/spark-b.tar.xz" | tar -C "$work" -xf -
  xz -dc "$here/data.tar.xz" | tar -C "$work" -xf -
  touch "$work/b.done"
fi
export LD_LIBRARY_PATH="$work/native${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# OpenBLAS 0.3.21 takes the device machine's CPU for a Prescott (see tools/gpu-run.sh)
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
export SPARK_LOCAL_IP=127.0.0.1
mapfile -t jvm_flags < "$here/jvm-flags.txt"
exec "$work/jre/bin/java" ${EXL2_JAVA_OPTS:--Xmx48g} "${jvm_flags[@]}" -Djava.io.tmpdir="$work" \
  -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$work/jars/*" org.exl2spark.cli.Exl2 "$@"
EOF

cat > "$b/e2e.sh" <<'EOF'
#!/usr/bin/env bash
# Device call 2: converts the tiny model on GPU 0 (`exl2 convert ... --conf spark.exl2.localGpus=0`), evaluates each
# output on the GPU and leaves in $OUT: e2e.log, <bpw>bpw.safetensors per target, small.tar.gz (measurement.json,
# job.json, each output's config.json and manifest). TARGETS (default 4.0,3.0,2.5) and extra convert flags ("$@").
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=/tmp/exl2-spark
out=${OUT:-$work/out-files}
mkdir -p "$out"
targets=${TARGETS:-4.0,3.0,2.5}
log="$out/e2e.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$log"
nproc | sed 's/^/cpu cores: /' | tee -a "$log"
rm -rf "$work/job" "$work/model-out"
start=$(date +%s%N)
"$here/exl2.sh" convert -i "$work/data/model" -o "$work/job" -cf "$work/model-out" -b "$targets" \
  --conf spark.exl2.localGpus=0 "$@" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
echo "convert rc=$rc wall=$(( ($(date +%s%N) - start) / 1000000 )) ms" | tee -a "$log"
IFS=, read -r -a bpws <<< "$targets"
for t in "${bpws[@]}"; do
  dir="$work/model-out/${t}bpw"
  [ "${#bpws[@]}" -eq 1 ] && dir="$work/model-out"
  [ -d "$dir" ] || continue
  cp "$dir/output.safetensors" "$out/${t}bpw.safetensors"
  start=$(date +%s%N)
  "$here/exl2.sh" eval -m "$dir" --text "$work/data/heldout.txt" --device 0 2>&1 | sed "s/^/eval ${t}bpw: /" | tee -a "$log"
  echo "eval ${t}bpw wall=$(( ($(date +%s%N) - start) / 1000000 )) ms" | tee -a "$log"
done
(cd "$work" && tar -czf "$out/small.tar.gz" job/measurement.json job/job.json \
  $(cd "$work" && find model-out -name '*.json' ! -name tokenizer.json) 2>/dev/null)
exit "$rc"
EOF
chmod +x "$a/unpack.sh" "$b/exl2.sh" "$b/e2e.sh"

du -sh "$a" "$b" >&2
ls -la "$a" "$b" >&2
cat <<EOF

Bundle halves ready in $a and $b. On the device machine, two calls, the second right after the first:
  run  command: "bash $(basename "$bundle")/a/unpack.sh"               carry: ["$(basename "$bundle")/a"]
  run  command: "bash $(basename "$bundle")/b/e2e.sh"                  carry: ["$(basename "$bundle")/b"]
       (or "bash $(basename "$bundle")/b/exl2.sh <command> ..."; TARGETS=4.0 for one bitrate)
EOF
