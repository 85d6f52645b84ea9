#!/bin/sh
# Boot a Linux kernel ELF (with a PVH note) and an initramfs on vmscope and on QEMU (the
# same machine: `vmscope boot --qemu`, i.e. -machine pc,acpi=off and the CPU model that
# mirrors vmscope's), then print the diff of the two consoles with the printk timestamps
# masked. Exit status: 0 if they are identical, 1 if not.
# Usage: scripts/linux-boot-compare.sh KERNEL_ELF INITRD [CMDLINE]
set -eu
kernel=$1
initrd=$2
cmdline=${3:-console=ttyS0}
here=$(cd "$(dirname "$0")/.." && pwd)
vmscope=${VMSCOPE:-$here/target/release/vmscope}
[ -x "$vmscope" ] || { echo "build vmscope first (cargo build --release)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mask() { sed -e 's/^\[ *[0-9]*\.[0-9]*\] //' "$1"; }
start=$(date +%s.%N)
"$vmscope" boot --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
    </dev/null >"$tmp/vmscope.out" 2>"$tmp/vmscope.err" || echo "vmscope: exit status $?" >&2
mid=$(date +%s.%N)
"$vmscope" boot --qemu --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
    </dev/null >"$tmp/qemu.out" 2>"$tmp/qemu.err" || echo "qemu: exit status $?" >&2
end=$(date +%s.%N)
echo "wall time: vmscope $(echo "$mid - $start" | bc) s, qemu $(echo "$end - $mid" | bc) s" >&2
mask "$tmp/qemu.out" >"$tmp/qemu.masked"
mask "$tmp/vmscope.out" >"$tmp/vmscope.masked"
if diff -u --label qemu --label vmscope "$tmp/qemu.masked" "$tmp/vmscope.masked"; then
    echo "identical" >&2
else
    exit 1
fi
