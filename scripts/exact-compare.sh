#!/usr/bin/env bash
# Exactness gate for performance work: run two vmscope binaries on the same programs and
# require byte-identical stdout, stderr with --stats, --fault-trace (JSON Lines) and
# --trace (instruction trace) output, under --tlb on and --tlb check; and the same
# without --trace (which steps the machine one instruction at a time, while an untraced run
# goes through Machine::run's blocks).
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
        # With --trace the machine is stepped one instruction at a time (Machine::step);
        # without it, it runs through Machine::run (blocks of instructions): both count.
        for traced in yes no; do
            for v in old new; do
                bin=$OLD
                [ $v = new ] && bin=$NEW
                rm -f "$work/$v.tr"
                if [ $traced = yes ]; then
                    "$bin" run --tlb $tlb --stats --fault-trace "$work/$v.ft" \
                        --trace "$work/$v.tr" "$p" >"$work/$v.out" 2>"$work/$v.err"
                else
                    "$bin" run --tlb $tlb --stats --fault-trace "$work/$v.ft" \
                        "$p" >"$work/$v.out" 2>"$work/$v.err"
                fi
                echo "status $?" >>"$work/$v.out"
            done
            files="out err ft tr"
            tag="--trace"
            if [ $traced = no ]; then
                files="out err ft"
                tag="(untraced)"
            fi
            for f in $files; do
                if cmp -s "$work/old.$f" "$work/new.$f"; then
                    echo "same    $p --tlb $tlb $tag .$f ($(wc -c <"$work/new.$f") bytes)"
                else
                    echo "DIFFERS $p --tlb $tlb $tag .$f"
                    diff "$work/old.$f" "$work/new.$f" | head -5
                    fail=1
                fi
            done
        done
    done
done
exit $fail
