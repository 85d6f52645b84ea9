#!/usr/bin/env bash
# The performance table of issue [11] (a benchmark, not a test). For each workload it runs
# `vmscope run` RUNS times and prints guest instructions (from --stats), the median wall
# time, MIPS (million guest instructions per second of wall time), and, when
# qemu-system-x86_64 is installed, the median wall time of the same kernel, initramfs and
# program under QEMU TCG (`vmscope run --qemu`, runs interleaved with vmscope's) and the
# ratio vmscope/QEMU. Then peak host RSS of boot-to-exit at --mem 128M, 4G and 16G.
#
# Workloads (a)-(f) are tiny static programs in scripts/bench/*.s, assembled here with
# binutils and passed to `vmscope run` as host programs:
#   (a) intloop   register-only integer loop (10 instructions an iteration)
#   (b) memcopy   1 MiB buffer copied with 8-byte loads and stores
#   (c) pfstorm   mmap 16 MiB, write one byte per page, munmap
#   (d) forkexit  fork, child exit_group, parent wait4
#   (e) syscalls  getpid
#   (f) exit0     boot to the first user instruction (which exits)
# (g) bundled programs: hello, forkcow, brk, mmap, stack, efault.
# (h) Debian's Linux kernel (the ELF unpacked from the newest /boot/vmlinuz-*, booted through
#     its PVH note) to a busybox /init that exits at once (`vmscope boot`; skipped without
#     a kernel, xz or /bin/busybox).
#
# Usage: scripts/bench.sh [-n RUNS] [--vm PATH] [--base PATH] [--no-qemu] [--quick]
#   --vm PATH    the vmscope binary (default target/release/vmscope, built if missing)
#   --base PATH  another vmscope binary (e.g. a copy saved before a change), run
#                interleaved with --vm's: its median wall time and MIPS, and the speed-up
#   --quick      smaller workloads (a smoke run; the figures are dominated by boot)
# Columns: cpu-s is user+sys seconds of the median run (less disturbed by other load than
# wall time on a shared machine).
# QEMU's wall time includes its own start-up (about 0.1-0.3 s here), as vmscope's does.
# The machine is shared: the load average is printed first; compare medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3
VM=target/release/vmscope
QEMU=1
QUICK=0
BASE=
while [ $# -gt 0 ]; do
    case $1 in
    -n) RUNS=$2; shift 2 ;;
    --vm) VM=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --no-qemu) QEMU=0; shift ;;
    --quick) QUICK=1; shift ;;
    *) echo "usage: $0 [-n RUNS] [--vm PATH] [--base PATH] [--no-qemu] [--quick]" >&2; exit 2 ;;
    esac
done
[ -x "$VM" ] || cargo build --release -q -p vmscope
command -v qemu-system-x86_64 >/dev/null || QEMU=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ $QUICK = 1 ]; then
    ITERS=1000000 MEMCOPY=8 PFSTORM=1 FORKEXIT=20 SYSCALLS=5000
else
    ITERS=20000000 MEMCOPY=128 PFSTORM=8 FORKEXIT=200 SYSCALLS=50000
fi
build() { # NAME SYMBOL=VALUE
    as --defsym ITERS=$ITERS --defsym "ROUNDS=${2:-1}" -o "$work/$1.o" "scripts/bench/$1.s"
    ld -static -o "$work/$1" "$work/$1.o"
}
build intloop 1
build memcopy $MEMCOPY
build pfstorm $PFSTORM
build forkexit $FORKEXIT
build syscalls $SYSCALLS
build exit0 1

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# one_run OUT_PREFIX CMD...: "WALL CPU" seconds on stdout, the command's stderr in
# OUT_PREFIX.err
one_run() {
    local out=$1 t0 t1
    shift
    t0=$(now)
    /usr/bin/time -f '%U %S' -o "$out.time" "$@" >/dev/null 2>"$out.err" || true
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v f="$out.time" \
        'BEGIN{getline l < f; split(l, c, " "); printf "%.3f %.3f\n", b-a, c[1]+c[2]}'
}
# col N: field N of each line
col() { awk -v n="$1" '{print $n}'; }

echo "# vmscope bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $RUNS runs each, medians"
if [ -n "$BASE" ]; then
    printf '%-16s %11s %8s %7s %7s | %8s %7s %7s | %7s %7s\n' workload guest-insns \
        base-s b-cpu-s b-MIPS wall-s cpu-s MIPS qemu-s ratio
else
    printf '%-16s %11s %8s %7s %7s %7s %7s\n' workload guest-insns wall-s cpu-s MIPS qemu-s ratio
fi

# bench NAME ARGS...: ARGS are vmscope run's (options, program, program arguments).
bench() {
    local name=$1 vs=() bs=() qs=() i insns v b mips bmips qwall ratio
    shift
    for i in $(seq "$RUNS"); do
        vs+=("$(one_run "$work/v" "$VM" "${SUB:-run}" --stats "$@")")
        if [ -n "$BASE" ]; then
            bs+=("$(one_run "$work/b" "$BASE" "${SUB:-run}" --stats "$@")")
        fi
        if [ $QEMU = 1 ]; then
            qs+=("$(one_run "$work/q" "$VM" "${SUB:-run}" --qemu "$@")")
        fi
    done
    insns=$(awk '/^instructions: /{print $2}' "$work/v.err")
    # The run with the median wall time: "WALL CPU".
    v=$(printf '%s\n' "${vs[@]}" | sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
    mips=$(awk -v n="${insns:-0}" -v w="${v% *}" 'BEGIN{printf "%.1f", n/w/1e6}')
    if [ $QEMU = 1 ]; then
        qwall=$(printf '%s\n' "${qs[@]}" | col 1 | median)
        ratio=$(awk -v a="${v% *}" -v b="$qwall" 'BEGIN{printf "%.1fx", a/b}')
    else
        qwall=- ratio=-
    fi
    if [ -n "$BASE" ]; then
        b=$(printf '%s\n' "${bs[@]}" | sort -g | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
        bmips=$(awk -v n="${insns:-0}" -v w="${b% *}" 'BEGIN{printf "%.1f", n/w/1e6}')
        printf '%-16s %11s %8s %7s %7s | %8s %7s %7s | %7s %7s\n' "$name" "${insns:-?}" \
            "${b% *}" "${b#* }" "$bmips" "${v% *}" "${v#* }" "$mips" "$qwall" "$ratio"
    else
        printf '%-16s %11s %8s %7s %7s %7s %7s\n' "$name" "${insns:-?}" "${v% *}" "${v#* }" \
            "$mips" "$qwall" "$ratio"
    fi
}

bench "(a) intloop" "$work/intloop"
bench "(b) memcopy" "$work/memcopy"
bench "(c) pfstorm" "$work/pfstorm"
bench "(d) forkexit" "$work/forkexit"
bench "(e) syscalls" "$work/syscalls"
bench "(f) boot 128M" "$work/exit0"
bench "(f) boot 4G" --mem 4G "$work/exit0"
bench "(f) boot 16G" --mem 16G "$work/exit0"
for p in hello forkcow brk mmap stack efault; do
    bench "(g) $p" "$p"
done
# (h): bench's `vmscope run` becomes `vmscope boot` (SUB).
linux_boot() {
    local bz at
    bz=$(ls /boot/vmlinuz-* 2>/dev/null | sort | tail -1)
    if [ -z "$bz" ] || ! command -v xz >/dev/null || ! [ -x /bin/busybox ]; then
        echo "(h) Linux boot   skipped: needs /boot/vmlinuz-* (linux-image-amd64), xz and /bin/busybox"
        return
    fi
    # The xz payload of the bzImage (Linux's scripts/extract-vmlinux).
    at=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$bz" | head -1 | cut -d: -f1)
    tail -c +$((at + 1)) "$bz" | xz -dc --single-stream > "$work/vmlinux" 2>/dev/null || true
    mkdir -p "$work/rd/bin"
    cp /bin/busybox "$work/rd/bin/busybox"
    cat > "$work/rd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox printf '\000' | /bin/busybox dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
INIT
    chmod +x "$work/rd/init"
    (cd "$work/rd" && find . | cpio -o -H newc 2>/dev/null) > "$work/linux.cpio"
    SUB=boot bench "(h) Linux boot" --kernel "$work/vmlinux" --initrd "$work/linux.cpio" \
        --cmdline console=ttyS0
}
linux_boot

echo
echo "# peak host RSS of vmscope run (boot to exit; /usr/bin/time's maximum resident set)"
rss() { # VM MEM PROGRAM
    /usr/bin/time -f '%M' -o "$work/rss" "$1" run --mem "$2" "$3" >/dev/null 2>&1 || true
    awk '{printf "%.1f MiB", $1/1024}' "$work/rss"
}
for mem in 128M 4G 16G; do
    for p in exit0 hello; do
        prog=$p
        [ $p = exit0 ] && prog=$work/exit0
        if [ -n "$BASE" ]; then
            printf '%-22s base %12s   now %12s\n' "--mem $mem $p" "$(rss "$BASE" $mem "$prog")" \
                "$(rss "$VM" $mem "$prog")"
        else
            printf '%-22s %12s\n' "--mem $mem $p" "$(rss "$VM" $mem "$prog")"
        fi
    done
done
