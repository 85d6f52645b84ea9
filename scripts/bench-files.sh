#!/usr/bin/env bash
# Benchmark (not a test) of files on a virtio disk: sequential write and read MiB/s in guest
# time, guest instructions per cached 4 KiB read, and wall time of the same run on vmscope
# and under QEMU (`--qemu`), with the same disk image.
#
#   scripts/bench-files.sh [RUNS]
#
# Needs e2fsprogs (mke2fs) and qemu-system-x86_64; uses farm-bench for the wall-time pair
# when it is on PATH, else times one run of each.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
cargo build --release -q
VM=target/release/vmscope
MKE2FS=$(command -v mke2fs || echo /sbin/mke2fs)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
# 32 MiB of data nothing has read yet when the benchmark reads it.
head -c $((32 << 20)) /dev/urandom > "$work/src/data"
"$MKE2FS" -q -F -t ext2 -b 4096 -d "$work/src" "$work/base.img" 96M

run() { # IMG N [--qemu]
    cp "$work/base.img" "$work/run.img"
    "$VM" run ${3:-} --stats --mem 256M --disk "$work/run.img" pagecache bench /mnt /mnt/data "$2" 2>&1
}

echo "== vmscope (guest time is virtual time, from the instruction count)"
a=$(run x 1000)
echo "$a" | grep -E "MiB/s|cached"
b=$(run x 11000)
insns() { echo "$1" | awk '/^instructions: /{print $2; exit}'; }
ia=$(insns "$a"); ib=$(insns "$b")
if [ -n "$ia" ] && [ -n "$ib" ]; then
    echo "guest instructions per cached 4 KiB read: $(( (ib - ia) / 10000 ))"
fi
echo "== QEMU (guest time is QEMU's virtual clock, i.e. host time while it runs)"
run x 1000 --qemu | grep -E "MiB/s|cached" || true
echo "== wall time of the whole run (vmscope / QEMU)"
cp "$work/base.img" "$work/a.img"; cp "$work/base.img" "$work/b.img"
if command -v farm-bench >/dev/null; then
    farm-bench -n "$RUNS" --timeout 600 \
        --vs "$VM run --qemu --mem 256M --disk $work/b.img pagecache bench /mnt /mnt/data 1000" \
        -- "$VM" run --mem 256M --disk "$work/a.img" pagecache bench /mnt /mnt/data 1000
else
    time "$VM" run --mem 256M --disk "$work/a.img" pagecache bench /mnt /mnt/data 1000 >/dev/null
    time "$VM" run --qemu --mem 256M --disk "$work/b.img" pagecache bench /mnt /mnt/data 1000 >/dev/null
fi
