#!/usr/bin/env bash
# Many small files: FILES files of 1 MB (default 1,000) to @tus/server over loopback, upq
# with max_active = 8 (`upqctl add -` then `upqctl wait`) against tus-js-client uploading
# the same files 8 at a time. Alternates the two over several rounds and prints medians.
# Then LOCAL_FILES files of 64 KiB (default 2,000) published to the `local` folder
# destination, against `cp` of the same files and `sync`, alternating the same way.
# Starts its own servers and upqd and stops only those, by PID.
#
# Usage: bench/small.sh                    (1,000 and 2,000 files, 3 rounds)
#   UPQ_BENCH_FILES=200 UPQ_BENCH_LOCAL_FILES=500 UPQ_BENCH_ROUNDS=5 bench/small.sh
#   UPQ_BENCH_SMOKE=1 UPQ_BENCH_FILES=20 UPQ_BENCH_LOCAL_FILES=20 UPQ_BENCH_ROUNDS=1 bench/small.sh
#                                          (what CI runs)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
count=${UPQ_BENCH_FILES:-1000}
local_count=${UPQ_BENCH_LOCAL_FILES:-2000}
rounds=${UPQ_BENCH_ROUNDS:-3}
cd "$root"
. bench/common.sh
bench_binaries
for dir in tests/tus-server bench/tus; do
    if [ ! -d "$dir/node_modules" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
done
bench_setup small
bench_scratch

declare -A endpoint
for client in upq tus-js-client; do
    mkdir -p "$scratch/store-$client"
    UPQ_TUS_WATCH_STDIN=0 node tests/tus-server/server.mjs "$scratch/store-$client" \
        </dev/null >"$work/server-$client.out" 2>"$work/server-$client.log" &
    pids+=("$!")
    line=$(wait_line "$work/server-$client.out" '^listening on ' "$!")
    endpoint[$client]=${line#listening on }
done

bench_home
cat >"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[daemon]
max_active = 8

[destinations.tus]
kind = "tus"
endpoint = "${endpoint[upq]}"

[destinations.local]
kind = "dir"
path = "$work/outbox"
TOML
bench_upqd

echo "writing $count files of 1 MB..." >&2
for i in $(seq 1 "$count"); do
    head -c 1000000 /dev/urandom >"$work/videos/clip-$i.mp4"
done
ls "$work"/videos/clip-*.mp4 >"$work/paths.txt"

stored() { find "$scratch/store-$1" -type f ! -name '*.json' | wc -l; }

# Queues every path listed in the file $2 to destination $1 with `upqctl add -` and waits
# until all are published; prints the seconds that took.
upq_publish() {
    local start end
    start=$(now)
    "$upqctl" --socket "$socket" add - --to "$1" <"$2" >"$work/ids.txt" ||
        fail "upqctl add - failed"
    # shellcheck disable=SC2046 # one argument an id
    "$upqctl" --socket "$socket" wait $(cat "$work/ids.txt") --timeout 900s >/dev/null ||
        fail "not every job published"
    end=$(now)
    elapsed "$start" "$end"
}

upq_times=()
js_times=()
for round in $(seq 1 "$rounds"); do
    rm -rf "${scratch:?}"/store-upq/* "${scratch:?}"/store-tus-js-client/*
    upq_times+=("$(upq_publish tus "$work/paths.txt")")
    [ "$(stored upq)" -eq "$count" ] || fail "upq: $(stored upq) uploads stored of $count"

    start=$(now)
    node bench/tus/many.mjs "${endpoint[tus-js-client]}" 8 <"$work/paths.txt" >/dev/null ||
        fail "tus-js-client failed"
    end=$(now)
    js_times+=("$(elapsed "$start" "$end")")
    [ "$(stored tus-js-client)" -eq "$count" ] || fail "tus-js-client: $(stored tus-js-client) uploads stored of $count"
    echo "round $round: upq ${upq_times[-1]} s, tus-js-client ${js_times[-1]} s" >&2
done

upq=$(median "${upq_times[@]}")
js=$(median "${js_times[@]}")
awk -v u="$upq" -v j="$js" -v n="$count" -v r="$rounds" 'BEGIN {
    printf "%d files of 1 MB to @tus/server, 8 at a time, median of %d rounds\n", n, r
    printf "%-15s %9s %10s %10s\n", "client", "seconds", "files/s", "vs js"
    printf "%-15s %9.2f %10.1f %9.2fx\n", "upq", u, n / u, j / u
    printf "%-15s %9.2f %10.1f %9.2fx\n", "tus-js-client", j, n / j, 1
}'

echo "writing $local_count files of 64 KiB..." >&2
mkdir -p "$work/small" "$work/outbox" "$work/copies"
for i in $(seq 1 "$local_count"); do
    head -c 65536 /dev/urandom >"$work/small/clip-$i.mp4"
done
ls "$work"/small/clip-*.mp4 >"$work/small-paths.txt"
published() { find "$work/outbox" -maxdepth 1 -type f -name 'clip-*' | wc -l; }

local_times=()
cp_times=()
for round in $(seq 1 "$rounds"); do
    rm -rf "${work:?}"/outbox/* "${work:?}"/copies/*
    sync
    local_times+=("$(upq_publish local "$work/small-paths.txt")")
    [ "$(published)" -eq "$local_count" ] || fail "local: $(published) files published of $local_count"

    start=$(now)
    cp "$work"/small/clip-*.mp4 "$work/copies/" && sync
    end=$(now)
    cp_times+=("$(elapsed "$start" "$end")")
    echo "round $round: upq to local ${local_times[-1]} s, cp && sync ${cp_times[-1]} s" >&2
done

upq_local=$(median "${local_times[@]}")
cp_local=$(median "${cp_times[@]}")
awk -v u="$upq_local" -v c="$cp_local" -v n="$local_count" -v r="$rounds" 'BEGIN {
    printf "%d files of 64 KiB to local, median of %d rounds (goal: at most 11 s for 2,000)\n", n, r
    printf "%-15s %9s %10s\n", "", "seconds", "files/s"
    printf "%-15s %9.2f %10.1f\n", "upq", u, n / u
    printf "%-15s %9.2f %10.1f\n", "cp && sync", c, n / c
}'
