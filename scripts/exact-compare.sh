#!/usr/bin/env bash
# Exactness gate for performance work: run two vmscope binaries on the same programs and
# require byte-identical stdout, stderr with --stats, --fault-trace (JSON Lines) and
# --trace (instruction trace) output, under --tlb on and --tlb check.
#
#   scripts/exact-compare.sh OLD_VMSCOPE NEW_VMSCOPE [PROGRAM...]
#
# PROGRAM defaults to: hello forkcow. Exit status 0 when everything matched.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD NEW [PROGRAM...]" >&2; exit 2; }
OLD=$1 NEW=$2
shift 2
[ $# -gt 0 ] || set -- hello forkcow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
for p in "$@"; do
    for tlb in on check; do
        for v in old new; do
            bin=$OLD
            [ $v = new ] && bin=$NEW
            "$bin" run --tlb $tlb --stats --fault-trace "$work/$v.ft" --trace "$work/$v.tr" \
                "$p" >"$work/$v.out" 2>"$work/$v.err"
            echo "status $?" >>"$work/$v.out"
        done
        for f in out err ft tr; do
            if cmp -s "$work/old.$f" "$work/new.$f"; then
                echo "same    $p --tlb $tlb .$f ($(wc -c <"$work/new.$f") bytes)"
            else
                echo "DIFFERS $p --tlb $tlb .$f"
                diff "$work/old.$f" "$work/new.$f" | head -5
                fail=1
            fi
        done
    done
done
exit $fail
