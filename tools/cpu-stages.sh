#!/usr/bin/env bash
# Runs an exl2 command (an embedded local Spark: the executors are in its JVM) and prints each pass's CPU seconds
# and wall time: the JVM's utime+stime from /proc/PID/stat, sampled every 0.5 s and interpolated at each stage's
# first ("...: N tasks") and last ("...: N/N done") progress line. CPU seconds are the figure to compare on a shared
# machine; wall time only when it is quiet (the load average is printed).
#
# Usage: tools/cpu-stages.sh PREFIX submit/exl2 convert -i ... -o ... -cf ... -b 4.0
#   PREFIX.log  the command's stdout, each line prefixed with its epoch time
#   PREFIX.err  its stderr
#   PREFIX.cpu  epoch time, CPU ticks of the JVM, 1-minute load average
# JAVA_OPTS passes through (e.g. -XX:StartFlightRecording=filename=PREFIX.jfr,settings=profile).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,/^set/p' "$0" | sed '$d' >&2
  exit 2
fi
prefix=$1
shift
: > "$prefix.cpu"
start=$(date +%s.%N)
# submit/exl2 execs java, so the background pid is the JVM's
"$@" > >(while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done > "$prefix.log") \
  2> "$prefix.err" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  if read -r -a stat < "/proc/$pid/stat" 2>/dev/null; then
    echo "$(date +%s.%N) $((stat[13] + stat[14])) $(cut -d' ' -f1 /proc/loadavg)" >> "$prefix.cpu"
  fi
  sleep 0.5
done
rc=0
wait "$pid" || rc=$?
end=$(date +%s.%N)
sleep 1 # the stdout reader finishes its last lines

python3 - "$prefix" "$(getconf CLK_TCK)" "$start" "$end" "$rc" <<'EOF'
import bisect, re, sys
prefix, tick, start, end, rc = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
samples = [tuple(map(float, l.split())) for l in open(prefix + '.cpu') if l.strip()]
times = [s[0] for s in samples]

def cpu_at(t):
    i = bisect.bisect_left(times, t)
    if i == 0:
        return samples[0][1] / tick
    if i >= len(samples):
        return samples[-1][1] / tick
    (t0, c0, _), (t1, c1, _) = samples[i - 1], samples[i]
    return (c0 + (c1 - c0) * (t - t0) / (t1 - t0)) / tick

def pass_of(description):
    for prefix_, name in (('reference forward', 'reference forward'), ('measure', 'measurement'),
                          ('quantize', 'quantization tasks'), ('forward', 'quantized-path forwards')):
        if description.startswith(prefix_):
            return name
    return description

open_stages, passes = {}, {}
for line in open(prefix + '.log'):
    t, _, message = line.rstrip('\n').partition(' ')
    started = re.match(r'(.*): \d+ tasks?$', message)
    if started:
        open_stages[started.group(1)] = float(t)
        continue
    done = re.match(r'(.*): (\d+)/(\d+) done', message)
    if done and done.group(2) == done.group(3) and done.group(1) in open_stages:
        t0 = open_stages.pop(done.group(1))
        p = passes.setdefault(pass_of(done.group(1)), [0.0, 0.0, 0])
        p[0] += cpu_at(float(t)) - cpu_at(t0)
        p[1] += float(t) - t0
        p[2] += 1
total = samples[-1][1] / tick if samples else 0.0
loads = [s[2] for s in samples] or [0.0]
print(f'exit {rc}, wall {end - start:.1f} s, JVM CPU {total:.1f} s, load average {min(loads)}-{max(loads)} '
      f'(mean {sum(loads) / len(loads):.1f})')
staged = 0.0
for name, (cpu, wall, n) in passes.items():
    staged += cpu
    print(f'  {name:45s} CPU {cpu:7.1f} s   wall {wall:7.1f} s   ({n} stage{"s" if n > 1 else ""})')
print(f'  {"outside stages (start-up, optimizer, ...)":45s} CPU {total - staged:7.1f} s')
EOF
exit "$rc"
