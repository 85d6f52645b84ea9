#!/usr/bin/env bash
# The cost of the instruction trace (a benchmark, not a test; README "Instruction trace"
# quotes its figures). Builds vmscope twice:
#   hooks     the default build (feature trace-hooks: Cpu::mem_log and its checks)
#   no hooks  --no-default-features, in target/nohooks (the baseline without trace hooks)
# and runs each workload RUNS times (default 3) in these configurations:
#   no-hooks        the no-hooks build, no trace
#   hooks-off       the default build, no trace: what tracing costs when it is off
#   trace-null      the default build with --trace /dev/null (formatting on the writer thread)
#   trace-null-emu  the same with VMSCOPE_TRACE_FORMAT=emulator (formatting on the emulator
#                   thread, the writer only writes)
#   trace-file      --trace to a file in $TMPDIR (hello only: the files are large)
# (the long selftest=mm workload runs in the first two only).
# It prints, per workload and configuration, the best wall time of the runs, MIPS (million
# guest instructions per second of wall time), the CPU time (user+sys) of that run, and the
# ratio to no-hooks. The machine is shared: the load average is printed first, and the best
# of several runs is the figure least disturbed by other processes.
#
# Usage: scripts/bench-trace.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
TMP=${TMPDIR:-/tmp}

echo "== building (default features, then --no-default-features in target/nohooks)" >&2
cargo build --release -q -p vmscope
CARGO_TARGET_DIR=target/nohooks cargo build --release -q -p vmscope --no-default-features
HOOKS=target/release/vmscope
NOHOOKS=target/nohooks/release/vmscope

WORKLOADS=(
    "run hello"
    "run efault"
    "boot --cmdline selftest=mmbench"
    # Long (about 120 million instructions): hooks on and off only.
    "boot --cmdline selftest=mm"
)

# best_of CMD...: run RUNS times; print "WALL CPU" of the run with the best wall time.
best_of() {
    local best_wall="" best_cpu="" t wall user sys
    for _ in $(seq "$RUNS"); do
        t=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1 ) || true
        read -r wall user sys <<<"$t"
        if [[ -z $best_wall ]] || awk -v a="$wall" -v b="$best_wall" 'BEGIN{exit !(a<b)}'; then
            best_wall=$wall
            best_cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
        fi
    done
    echo "$best_wall $best_cpu"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; best of $RUNS runs"
printf '%-34s %-15s %12s %8s %8s %8s %8s\n' workload config instructions "wall s" MIPS "CPU s" "x no-hooks"
for w in "${WORKLOADS[@]}"; do
    read -r -a args <<<"$w"
    # Options go before a `run` PROGRAM: insert them after the subcommand.
    sub=${args[0]}
    rest=("${args[@]:1}")
    insns=$("$HOOKS" "$sub" --stats "${rest[@]}" 2>&1 >/dev/null | awk '/^instructions:/{print $2}')
    configs=(no-hooks hooks-off trace-null trace-null-emu)
    [[ $w == "run hello" ]] && configs+=(trace-file)
    [[ $w == *selftest=mm ]] && configs=(no-hooks hooks-off)
    base=""
    for c in "${configs[@]}"; do
        case $c in
            no-hooks) cmd=(env "$NOHOOKS" "$sub" "${rest[@]}") ;;
            hooks-off) cmd=(env "$HOOKS" "$sub" "${rest[@]}") ;;
            trace-null) cmd=(env "$HOOKS" "$sub" --trace /dev/null "${rest[@]}") ;;
            trace-null-emu) cmd=(env VMSCOPE_TRACE_FORMAT=emulator "$HOOKS" "$sub" --trace /dev/null "${rest[@]}") ;;
            trace-file) cmd=(env "$HOOKS" "$sub" --trace "$TMP/vmscope-bench-trace.txt" "${rest[@]}") ;;
        esac
        read -r wall cpu <<<"$(best_of "${cmd[@]}")"
        [[ -z $base ]] && base=$wall
        awk -v w="$w" -v c="$c" -v n="$insns" -v t="$wall" -v cpu="$cpu" -v b="$base" 'BEGIN{
            printf "%-34s %-15s %12d %8.3f %8.2f %8.2f %8.2f\n", w, c, n, t, n/t/1e6, cpu, t/b }'
    done
done
if [[ -f $TMP/vmscope-bench-trace.txt ]]; then
    echo "trace file of hello: $(wc -c <"$TMP/vmscope-bench-trace.txt") bytes, $(wc -l <"$TMP/vmscope-bench-trace.txt") lines"
    rm -f "$TMP/vmscope-bench-trace.txt"
fi
