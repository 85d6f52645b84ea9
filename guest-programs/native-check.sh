#!/bin/sh
# Runs the guest programs natively on this Linux host and checks what the
# guest-kernel comparison relies on:
#
# * every program whose output is compared with Linux (see README.md) prints
#   the same stdout twice in a row, and with the release, o0 and o3 builds;
# * its exit status is the documented one (128 + signal for a signal death,
#   as a shell reports it: `segv uncaught` -> 139);
# * the kernel-describing programs run and exit 0.
#
# Usage (from guest-programs/): ./native-check.sh [profile...]
# (default: release o0 o3). Exit status 0 if everything matched.
set -u
cd "$(dirname "$0")" || exit 1
profiles=${*:-release o0 o3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0

# name | expected status | command line (run under `env -i` from the
# profile's output directory BIN, so args sees only what we pass and the
# same argv[0] for every profile)
cases='
hello|0|hello
args|0|args x "second arg"
exitcode|42|exitcode
exitcode-300|44|exitcode 300
exitcode-nope|2|exitcode nope
brk|0|brk
mmap|0|mmap
stack|0|stack
forkcow|0|forkcow
execchain|0|VMSCOPE_BIN=$BIN ./execchain
execlimits|0|VMSCOPE_BIN=$BIN EXECLIMITS_TOLERANCE_KB=1048576 ./execlimits
wait|0|wait
segv|0|segv
segv-uncaught|139|segv uncaught
efault|0|efault
vdso|0|vdso
'
# Kernel-describing: must run and exit 0; output not compared.
describing='maps free ps pmap vmstat'

for profile in $profiles; do
    cargo build -q --profile "$profile" --target x86_64-unknown-none || exit 1
    BIN=$PWD/target/x86_64-unknown-none/$profile
    echo "$cases" | while IFS='|' read -r name want cmd; do
        [ -n "$name" ] || continue
        case $cmd in VMSCOPE_BIN=*) ;; *) cmd="./$cmd" ;; esac
        for run in 1 2; do
            env -i BIN="$BIN" sh -c "cd \"\$BIN\" && eval exec env -i $cmd" \
                >"$out/$name.$profile.$run" 2>/dev/null
            echo $? >"$out/$name.$profile.$run.status"
        done
    done
    for name in $describing; do
        if ! "$BIN/$name" >/dev/null; then
            echo "FAIL $profile/$name: exit status $?"
            fail=1
        fi
    done
done

first=${profiles%% *}
for name in $(echo "$cases" | cut -d'|' -f1); do
    want=$(echo "$cases" | grep "^$name|" | cut -d'|' -f2)
    for profile in $profiles; do
        for run in 1 2; do
            got=$(cat "$out/$name.$profile.$run.status")
            if [ "$got" != "$want" ]; then
                echo "FAIL $profile/$name run $run: status $got, expected $want"
                fail=1
            fi
            if ! cmp -s "$out/$name.$first.1" "$out/$name.$profile.$run"; then
                echo "FAIL $profile/$name run $run: stdout differs from $first run 1"
                fail=1
            fi
        done
    done
    printf '%-14s status %-3s %4s lines  ok\n' "$name" "$want" \
        "$(wc -l <"$out/$name.$first.1")"
done
[ $fail = 0 ] && echo "all programs deterministic natively ($profiles)"
exit $fail
