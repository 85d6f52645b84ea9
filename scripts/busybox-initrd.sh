#!/bin/sh
# Build a busybox initramfs whose /init mounts proc, sysfs and devtmpfs, runs a few
# pipelines whose output does not depend on timing, sleeps one second, and ends the
# machine through isa-debug-exit (port 0xf4, written through /dev/port: status 0).
# Usage: scripts/busybox-initrd.sh OUT.cpio.gz [BUSYBOX]   (BUSYBOX: a static busybox)
set -eu
out=$1
bb=${2:-/bin/busybox}
command -v cpio >/dev/null || { echo "needs cpio" >&2; exit 2; }
file -L "$bb" 2>/dev/null | grep -q "statically linked" || echo "warning: $bb may not be static" >&2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
cat > "$dir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "init: hello from busybox"
cat /proc/meminfo | head -1
grep "model name" /proc/cpuinfo | sed 's/[[:space:]]*:[[:space:]]*/: /'
echo "applets: $(ls /bin | wc -l)"
uname -sr
ls /sys/bus/pci/devices | tr '\n' ' '; echo
sleep 1
echo "slept"
printf '\000' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo "isa-debug-exit did not stop the machine"
INIT
chmod +x "$dir/init"
(cd "$dir" && find . | cpio -o -H newc 2>/dev/null) | gzip -9 > "$out"
