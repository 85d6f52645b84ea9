#!/usr/bin/env bash
# How vm.swappiness balances reclaim between file and anonymous pages (issue [09]): a
# 64 MiB guest with an ext2 disk holding a 40 MiB file and a 128 MiB swap disk runs
# `pressure /mnt/data 40` (read the file, touch 40 MiB of anonymous memory, twice) at
# swappiness 0, 60 and 200 (`sysctl.vm.swappiness=` on the kernel command line), and
# prints the reclaim counters of each run. Deterministic: the same figures every run.
#
#   scripts/swappiness.sh
#
# Needs e2fsprogs (mke2fs) and util-linux (mkswap).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
VM=target/release/vmscope
MKE2FS=$(command -v mke2fs || echo /sbin/mke2fs)
MKSWAP=$(command -v mkswap || echo /sbin/mkswap)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
# Fixed contents: the runs are comparable and repeatable.
head -c $((40 << 20)) /dev/zero | tr '\0' 'x' > "$work/src/data"
"$MKE2FS" -q -F -t ext2 -b 4096 -d "$work/src" "$work/base.img" 64M
for s in 0 60 200; do
    cp "$work/base.img" "$work/run.img"
    truncate -s 128M "$work/swap.img"
    "$MKSWAP" -q "$work/swap.img" >/dev/null 2>&1 || "$MKSWAP" "$work/swap.img" >/dev/null
    echo "== vm.swappiness=$s"
    "$VM" run --mem 64M --disk "$work/run.img" --disk "$work/swap.img" \
        --cmdline "sysctl.vm.swappiness=$s" pressure /mnt/data 40
    rm -f "$work/swap.img"
done
