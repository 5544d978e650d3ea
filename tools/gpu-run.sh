#!/usr/bin/env bash
# Builds the GPU self-test bundle and prints the device-machine call that runs it.
#
# The device machine has a driver but no Java and no Maven, and a device run carries only the session's checkout
# plus named ignored folders (64 MiB in all). So this builds the jars here, jlinks a Java 17 runtime (cached), and
# assembles in BUNDLE (default: /work/main/.gpu, git-ignored there):
#   jre.tar.xz        jlink'ed runtime (module list from docs/notes/spark-jcuda-stack.md)
#   openblas.tar.xz   the system OpenBLAS the CPU twins run on (netlib loads libblas.so.3 / liblapack.so.3)
#   lib/              our kernels + job jars, JCuda, a driver-only JCuda natives jar, netlib, Jackson, SLF4J
#   tiny-forward.bin  the tiny model's fp16 weights and 40 × 2048 eval tokens (org.exl2spark.gpu.ForwardFixture;
#                     the device machine has no Hadoop to read a model directory with); TINY_MODEL overrides
#                     the model directory
#   selftest.sh       unpacks the two tarballs under /tmp and runs org.exl2spark.gpu.GpuSelfTest "$@"
#   backend.sh        the same for org.exl2spark.gpu.GpuBackendTest --fixture tiny-forward.bin "$@"
#   bench.sh          the same for org.exl2spark.gpu.LayerBenchmark "$@" (one Qwen1.5-110B-shaped layer, task code)
# and beside it, in BUNDLE.hadoop (50 MB, too much to ride with the bundle in one call): Hadoop's client, the tasks'
# file access, which `bench.sh --model DIR` (weights read from the example's safetensors) needs; its unpack.sh copies it
# to /tmp/exl2-gpu/hadoop in a device call of its own, just before the call that runs bench.sh (the machine keeps /tmp
# while it stays warm), and the launchers put it on their class path when it is there.
#   gptq-steps.sh     the same for org.exl2spark.gpu.GptqStepsBenchmark "$@" (that layer's GPTQ steps one by one)
#
# Usage: tools/gpu-run.sh [BUNDLE]      (MVN_FLAGS defaults to -o; set MVN_FLAGS= to let Maven go online)
#
# tools/gpu-run.sh --spark BUNDLE builds instead what the real job needs, `exl2 convert`/`eval` in an embedded local
# Spark, in two halves that each fit one device call (docs/BENCHMARKS.md, "The tiny model end to end on the GPU"):
#   BUNDLE/a/   jre.tar.xz, openblas.tar.xz, spark-a.tar.xz (most of the class path) and unpack.sh: call 1 unpacks
#               them under /tmp/exl2-spark, where they stay while the machine is warm
#   BUNDLE/b/   spark-b.tar.xz (Hadoop's client, our jars, JCuda, netlib), the tiny model and the eval text
#               (data.tar.xz; TINY_MODEL overrides the model), exl2.sh (the exl2 command line on that class path) and
#               e2e.sh (convert on the GPU, eval, outputs to $OUT; E2E_NAME=N for runs side by side): call 2 runs
#               them
# The class path is spark-core's runtime closure (tools/spark-core-runtime/pom.xml) at the job's versions, less what
# a local-mode RDD job never loads (see prune_spark_jars), plus the application's own dependencies without the S3
# connector (local paths only); native libraries of other platforms are dropped from the jars.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
spark_mode=false
if [ "${1:-}" = --spark ]; then
  spark_mode=true
  shift
fi
bundle=${1:-/work/main/.gpu}
mvn_flags=${MVN_FLAGS--o}
jdk=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
modules=java.base,java.sql,java.naming,java.management,jdk.management,jdk.unsupported,java.security.jgss,jdk.security.auth,jdk.incubator.vector,java.desktop,jdk.zipfs
openblas_dir=/usr/lib/x86_64-linux-gnu/openblas-pthread

echo "building jars in $repo" >&2
(cd "$repo" && mvn -q -B $mvn_flags -DskipTests package)

mkdir -p "$bundle"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# the jlink'ed runtime and the system OpenBLAS as tarballs in DIR (cached: kept when present)
runtime_tarballs() {
  local jre_dir=$1 openblas_dir_out=$2
  mkdir -p "$jre_dir" "$openblas_dir_out"
  if [ ! -f "$jre_dir/jre.tar.xz" ]; then
    echo "jlinking a Java 17 runtime from $jdk" >&2
    "$jdk/bin/jlink" --module-path "$jdk/jmods" --strip-debug --no-header-files --no-man-pages \
      --add-modules "$modules" --output "$stage/jre"
    tar -C "$stage" -cf - jre | xz -9 -T0 > "$jre_dir/jre.tar.xz.part"
    mv "$jre_dir/jre.tar.xz.part" "$jre_dir/jre.tar.xz"
  fi
  if [ ! -f "$openblas_dir_out/openblas.tar.xz" ]; then
    mkdir -p "$stage/native"
    for f in "$openblas_dir/libblas.so.3" "$openblas_dir/liblapack.so.3" "$openblas_dir/libopenblas.so.0" \
             /lib/x86_64-linux-gnu/libgfortran.so.5 /lib/x86_64-linux-gnu/libquadmath.so.0; do
      cp -L "$f" "$stage/native/"
    done
    tar -C "$stage/native" -cf - . | xz -9 -T0 > "$openblas_dir_out/openblas.tar.xz.part"
    mv "$openblas_dir_out/openblas.tar.xz.part" "$openblas_dir_out/openblas.tar.xz"
  fi
}

lib="$repo/job/target/lib"
# JCuda's natives jar carries NVRTC, runtime and PTX-compiler bindings too (9.5 MB); only the driver binding is used
jcuda_driver_natives() {
  mkdir -p "$stage/natives"
  (cd "$stage/natives" && unzip -q -o "$lib"/jcuda-natives-*-linux-x86_64.jar 'lib/libJCudaDriver-*')
  "$jdk/bin/jar" cf "$1/jcuda-natives-driver-only.jar" -C "$stage/natives" lib
}

if $spark_mode; then
  . "$repo/tools/gpu-run-spark.sh"
  exit 0
fi

runtime_tarballs "$bundle" "$bundle"

rm -rf "$bundle/lib"
mkdir -p "$bundle/lib"
cp "$repo/job/target/exl2-spark.jar" "$repo/kernels/target/exl2-spark-kernels-"*.jar "$bundle/lib/"
cp "$lib"/jcuda-[0-9]*.jar "$lib"/blas-*.jar "$lib"/lapack-*.jar "$lib"/arpack_combined_all-*.jar "$bundle/lib/"
# the fixture's config.json parser, the CPU backend's logger and its BLAS library probe (JNA)
cp "$lib"/jackson-core-2*.jar "$lib"/jackson-databind-2*.jar "$lib"/jackson-annotations-2*.jar \
  "$lib"/slf4j-api-*.jar "$lib"/jna-[0-9]*.jar "$bundle/lib/"

model=${TINY_MODEL:-$repo/../shared/models/tiny-llama-16m}
if [ ! -f "$bundle/tiny-forward.bin" ]; then
  echo "writing the tiny model's forward fixture from $model" >&2
  java -Dai.djl.offline=true -cp "$repo/job/target/exl2-spark.jar:$lib/*" org.exl2spark.gpu.ForwardFixture \
    "$model" "$repo/../shared/eval/heldout.txt" 40 2048 "$bundle/tiny-forward.bin.part" >&2
  mv "$bundle/tiny-forward.bin.part" "$bundle/tiny-forward.bin"
fi
jcuda_driver_natives "$bundle/lib"

hadoop_dir="$bundle.hadoop"
rm -rf "$hadoop_dir"
mkdir -p "$hadoop_dir"
cp "$lib"/hadoop-client-api-*.jar "$lib"/hadoop-client-runtime-*.jar "$lib"/commons-logging-*.jar "$hadoop_dir/"
cat > "$hadoop_dir/unpack.sh" <<'EOF'
#!/usr/bin/env bash
# Device call 1 of 2: Hadoop's client to /tmp/exl2-gpu/hadoop, where the bundle's launchers find it in call 2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p /tmp/exl2-gpu/hadoop
cp "$here"/*.jar /tmp/exl2-gpu/hadoop/
ls -la /tmp/exl2-gpu/hadoop
EOF
chmod +x "$hadoop_dir/unpack.sh"

# one launcher per entry point; each unpacks the runtime and OpenBLAS under /tmp once and logs to $OUT/<name>.log
launcher() {
  local name=$1 main=$2 args=$3
  cat > "$bundle/$name.sh" <<EOF
#!/usr/bin/env bash
# Runs $main from this bundle; the log also goes to \$OUT/$name.log when OUT is set.
set -euo pipefail
here=\$(cd "\$(dirname "\$0")" && pwd)
work=/tmp/exl2-gpu
mkdir -p "\$work/native"
[ -x "\$work/jre/bin/java" ] || xz -dc "\$here/jre.tar.xz" | tar -C "\$work" -xf -
[ -f "\$work/native/libblas.so.3" ] || xz -dc "\$here/openblas.tar.xz" | tar -C "\$work/native" -xf -
export LD_LIBRARY_PATH="\$work/native\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# OpenBLAS 0.3.21 does not recognise the device machine's CPU and falls back to its Prescott (SSE3) kernels, whose
# single-threaded strsm crashed (SIGSEGV in strtri, n 777) once the CPU backend pins OpenBLAS to one thread; every
# x86-64 server it runs on has AVX2
export OPENBLAS_CORETYPE=\${OPENBLAS_CORETYPE:-Haswell}
log="\${OUT:-\$work}/$name.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \\
  --format=csv 2>&1 | tee "\$log" || true
"\$work/jre/bin/java" -Xmx48g -Djava.io.tmpdir="\$work" --add-modules=jdk.incubator.vector \\
  -cp "\$here/lib/*:\$work/hadoop/*" $main $args"\$@" 2>&1 | tee -a "\$log"
EOF
  chmod +x "$bundle/$name.sh"
}
launcher selftest org.exl2spark.gpu.GpuSelfTest ""
launcher backend org.exl2spark.gpu.GpuBackendTest '--fixture "$here/tiny-forward.bin" '
launcher bench org.exl2spark.gpu.LayerBenchmark ""
launcher gptq-steps org.exl2spark.gpu.GptqStepsBenchmark ""

du -sh "$bundle" >&2
du -ah "$bundle" | sort -h | tail -12 >&2
cat <<EOF

Bundle ready in $bundle. Run it on the device machine (the call sends the checkout that holds .gpu):
  run  command: "bash $(basename "$bundle")/selftest.sh"   (options: --seed S --no-big --big-n N --big-rows R --only "GROUP,...")
       or:      "bash $(basename "$bundle")/backend.sh"    (options: --seed S --no-perf --only SECTION,SECTION)
       or:      "bash $(basename "$bundle")/bench.sh"      (options: --preset P --budget BYTES --measurement-rows N
                                                           --rows N --length T --rows-per-partition N --layer L
                                                           --model DIR: after a call of
                                                           "bash $(basename "$bundle").hadoop/unpack.sh" with
                                                           carry ["$(basename "$bundle").hadoop"])
       carry:   ["$(basename "$bundle")"]
       timeout_s: 540
EOF
