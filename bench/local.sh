#!/usr/bin/env bash
# Times upq's `local` destination against `cp FILE DEST && sync` for one file on the same
# filesystem. Starts its own release upqd in a temp dir and stops only that one, by its PID.
#
# Usage: bench/local.sh            (1 GiB; UPQ_BENCH_MIB=256 bench/local.sh for a quicker run)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${UPQ_BENCH_MIB:-1024}

cd "$root"
. bench/common.sh
bench_binaries
bench_setup local
bench_home

file=$work/videos/bench.mp4
echo "writing a ${size_mib} MiB file..." >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$file"
sync

bench_upqd

# Alternate the two, several rounds, and compare medians: disk speed on a shared
# machine varies from second to second.
rounds=${UPQ_BENCH_ROUNDS:-3}
upq_times=()
cp_times=()
for round in $(seq 1 "$rounds"); do
    rm -f "$work"/data/upq/outbox/bench*.mp4 "$work/cp-copy.mp4"
    sync
    start=$(now)
    id=$("$upqctl" --socket "$socket" add "$file") || fail "upqctl add failed"
    "$upqctl" --socket "$socket" wait "$id" --timeout 600s >/dev/null || fail "upqctl wait $id did not end in published"
    end=$(now)
    upq_times+=("$(elapsed "$start" "$end")")
    cmp -s "$file" "$work/data/upq/outbox/bench.mp4" || fail "the published copy differs from the source"

    rm -f "$work"/data/upq/outbox/bench*.mp4
    sync
    start=$(now)
    cp "$file" "$work/cp-copy.mp4" && sync
    end=$(now)
    cp_times+=("$(elapsed "$start" "$end")")
    echo "round $round: upq ${upq_times[-1]} s, cp && sync ${cp_times[-1]} s" >&2
done

upq_secs=$(median "${upq_times[@]}")
cp_secs=$(median "${cp_times[@]}")

fs=$(df --output=fstype "$work" | tail -n 1)
awk -v mib="$size_mib" -v upq="$upq_secs" -v cp="$cp_secs" -v fs="$fs" -v n="$rounds" 'BEGIN {
    printf "file:                    %d MiB on %s, median of %d rounds\n", mib, fs, n
    printf "upq (add + wait):        %7.2f s  %8.1f MiB/s\n", upq, mib / upq
    printf "cp && sync:              %7.2f s  %8.1f MiB/s\n", cp, mib / cp
    printf "throughput ratio upq/cp: %7.2f\n", cp / upq
}'
