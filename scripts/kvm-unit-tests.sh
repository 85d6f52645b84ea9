#!/usr/bin/env bash
# Run the x86-64 tests of kvm-unit-tests (the suite KVM and QEMU developers test their x86
# emulation with) on vmscope, and with --qemu also on QEMU TCG in the same run, through
# the suite's own runner: `run_tests.sh` with QEMU= a link named qemu-system-x86_64 to
# vmscope, which then runs QEMU's command lines (`vmscope qemu-compat`, README).
#
# Usage: scripts/kvm-unit-tests.sh [--qemu] [-j N] [--timeout S] [--out DIR] [TEST...]
#   TEST...      test names from x86/unittests.cfg (default: all)
#   --qemu       also run them on qemu-system-x86_64 (TCG) and print both columns
#   --timeout S  per-test timeout on vmscope (default 600; QEMU gets 60, as the
#                reference run in ../shared/third_party/README.md)
#   --out DIR    where results go (default target/kvm-unit-tests/results)
# Environment: KUT_TARBALL (default: ../shared/third_party/kvm-unit-tests-*.tar.gz next
# to the checkout), VMSCOPE (default target/release/vmscope).
# Output: one line per test, "NAME QEMU-RESULT VMSCOPE-RESULT" (PASS, FAIL, SKIP, or -
# when not run), in DIR/table.txt too; each runner's log in DIR/{vmscope,qemu}.log and
# the per-test logs in DIR/{vmscope,qemu}-logs/. Exit status 0 if the run completed, 3
# if the suite is not available (no tarball), 2 on a set-up error.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
qemu=no
jobs=1
timeout=600
out=$here/target/kvm-unit-tests/results
tests=()
while [ $# -gt 0 ]; do
    case $1 in
        --qemu) qemu=yes ;;
        -j) jobs=$2; shift ;;
        --timeout) timeout=$2; shift ;;
        --out) out=$2; shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) tests+=("$1") ;;
    esac
    shift
done
vmscope=${VMSCOPE:-$here/target/release/vmscope}
[ -x "$vmscope" ] || { echo "build vmscope first (cargo build --release)" >&2; exit 2; }
tarball=${KUT_TARBALL:-$(ls "$here"/../shared/third_party/kvm-unit-tests-*.tar.gz 2>/dev/null | head -1 || true)}
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
    echo "kvm-unit-tests: no source tarball (set KUT_TARBALL or put it in ../shared/third_party/)" >&2
    exit 3
fi

# Unpack and build once per tarball.
work=$here/target/kvm-unit-tests
src=$work/src
stamp=$work/built-from
if [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum "$tarball" | cut -d' ' -f1)" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    tar -xzf "$tarball" -C "$src" --strip-components=1
    (cd "$src" && ./configure --arch=x86_64 >/dev/null && make -j2 >/dev/null)
    sha256sum "$tarball" | cut -d' ' -f1 >"$stamp"
fi

# vmscope as qemu-system-x86_64.
mkdir -p "$work/bin" "$out"
ln -sf "$vmscope" "$work/bin/qemu-system-x86_64"

# run_tests.sh prints "PASS name (...)", "FAIL name (...)", "SKIP name (...)" with
# colour codes; keep the result and the name.
results() { sed -e 's/\x1b\[[0-9;]*m//g' "$1" | awk '$1 ~ /^(PASS|FAIL|SKIP)$/ {print $2, $1}'; }

run_suite() { # NAME QEMU-BINARY TIMEOUT
    local name=$1 bin=$2 t=$3
    rm -rf "$src/logs"
    (cd "$src" && QEMU=$bin ACCEL=tcg TIMEOUT=$t ./run_tests.sh -j "$jobs" "${tests[@]}" \
        >"$out/$name.log" 2>&1 || true)
    rm -rf "$out/$name-logs"
    cp -r "$src/logs" "$out/$name-logs" 2>/dev/null || true
    results "$out/$name.log" | sort >"$out/$name.txt"
}

run_suite vmscope "$work/bin/qemu-system-x86_64" "$timeout"
if [ $qemu = yes ]; then
    command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 not installed" >&2; exit 2; }
    run_suite qemu "$(command -v qemu-system-x86_64)" 60
else
    : >"$out/qemu.txt"
fi
join -a1 -a2 -e - -o 0,2.2,1.2 "$out/vmscope.txt" "$out/qemu.txt" | sort >"$out/table.txt"
cat "$out/table.txt"
