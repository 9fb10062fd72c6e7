#!/usr/bin/env bash
# CPU per GiB: the user + sys seconds upqd spends uploading a file to @tus/server over
# loopback at its defaults, against curl's for the same transfer (one POST, one PATCH of
# the whole file). Alternates the two over several rounds and prints medians. Starts its
# own server and upqd and stops only those, by PID.
#
# Usage: bench/cpu.sh                      (1 GiB, 3 rounds)
#   UPQ_BENCH_MIB=512 UPQ_BENCH_ROUNDS=5 bench/cpu.sh
#   UPQ_BENCH_SMOKE=1 UPQ_BENCH_MIB=8 UPQ_BENCH_ROUNDS=1 bench/cpu.sh   (what CI runs)
# For a profile of the same run: perf record -g -p "$(pgrep -n upqd)" while it uploads.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${UPQ_BENCH_MIB:-1024}
rounds=${UPQ_BENCH_ROUNDS:-3}
cd "$root"
. bench/common.sh
bench_binaries
if [ ! -d tests/tus-server/node_modules ]; then
    (cd tests/tus-server && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
bench_setup cpu
bench_scratch
mkdir -p "$scratch/store"
UPQ_TUS_WATCH_STDIN=0 node tests/tus-server/server.mjs "$scratch/store" \
    </dev/null >"$work/server.out" 2>"$work/server.log" &
pids+=("$!")
line=$(wait_line "$work/server.out" '^listening on ' "$!")
endpoint=${line#listening on }

bench_home
cat >"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[destinations.tus]
kind = "tus"
endpoint = "$endpoint"
TOML
bench_upqd
upqd_pid=${pids[-1]}

file=$work/videos/bench.mp4
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$file"
size=$(stat -c %s "$file")
ticks=$(getconf CLK_TCK)
cpu_secs() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

upq_cpu=()
curl_cpu=()
for round in $(seq 1 "$rounds"); do
    rm -rf "${scratch:?}/store"/*
    before=$(cpu_secs "$upqd_pid")
    id=$("$upqctl" --socket "$socket" add "$file" --to tus) || fail "upqctl add failed"
    "$upqctl" --socket "$socket" wait "$id" --timeout 900s >/dev/null || fail "job $id did not publish"
    after=$(cpu_secs "$upqd_pid")
    upq_cpu+=("$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.3f", b - a }')")

    rm -rf "${scratch:?}/store"/*
    location=$(curl -sS -o /dev/null -D - -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
        "$endpoint" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$location" ] || fail "curl: no Location from POST"
    TIMEFORMAT='%U %S'
    spent=$( { time curl -sS -f -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
        -H 'Content-Type: application/offset+octet-stream' -T "$file" "$location" 2>/dev/null; } 2>&1 ) ||
        fail "curl: PATCH failed"
    curl_cpu+=("$(echo "$spent" | awk '{ printf "%.3f", $1 + $2 }')")
    echo "round $round: upqd ${upq_cpu[-1]} s, curl ${curl_cpu[-1]} s of CPU" >&2
done

upq=$(median "${upq_cpu[@]}")
curl=$(median "${curl_cpu[@]}")
awk -v u="$upq" -v c="$curl" -v mib="$size_mib" -v n="$rounds" 'BEGIN {
    printf "%d MiB to @tus/server over loopback, user + sys CPU, median of %d rounds\n", mib, n
    printf "%-8s %12s %14s\n", "client", "CPU s", "CPU s per GiB"
    printf "%-8s %12.3f %14.3f\n", "upqd", u, u * 1024 / mib
    printf "%-8s %12.3f %14.3f\n", "curl", c, c * 1024 / mib
    if (c > 0) printf "upqd / curl: %.2fx (target: at most 1.5x)\n", u / c
}'
