#!/usr/bin/env bash
# Times upq's tus destination against tus-js-client, tuspy and curl, each uploading the same
# file to the official tus server (@tus/server + FileStore, Node.js) over loopback. curl sends
# the whole file in one PATCH: the ceiling. Every client gets its own server and storage
# folder; the script starts its own servers and release upqd and stops only those, by PID.
#
# Usage: bench/tus.sh                     (1 GiB, 3 rounds, 8 MiB chunks)
#   UPQ_BENCH_MIB=256 UPQ_BENCH_ROUNDS=5 UPQ_BENCH_CHUNK_MIB=16 bench/tus.sh
# tuspy is installed with pip into a virtualenv inside the script's temp folder (removed at
# the end); tus-js-client comes from bench/tus/package-lock.json (npm ci).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${UPQ_BENCH_MIB:-1024}
rounds=${UPQ_BENCH_ROUNDS:-3}
chunk_mib=${UPQ_BENCH_CHUNK_MIB:-8}
chunk_bytes=$((chunk_mib * 1024 * 1024))

cd "$root"
command -v node >/dev/null || { echo "bench: Node.js is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: curl is required" >&2; exit 1; }
echo "building release binaries..." >&2
cargo build --release --bins >&2
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
upqd=$target/release/upqd
upqctl=$target/release/upqctl

for dir in tests/tus-server bench/tus; do
    if [ ! -d "$dir/node_modules" ]; then
        echo "npm ci in $dir..." >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
done

. bench/common.sh
bench_setup tus

clients=(upq tus-js-client tuspy curl)
declare -A endpoint store
for client in "${clients[@]}"; do
    store[$client]=$work/store-$client
    mkdir -p "${store[$client]}"
    UPQ_TUS_WATCH_STDIN=0 node tests/tus-server/server.mjs "${store[$client]}" \
        </dev/null >"$work/server-$client.out" 2>"$work/server-$client.log" &
    pids+=("$!")
    line=$(wait_line "$work/server-$client.out" '^listening on ' "$!")
    endpoint[$client]=${line#listening on }
done

echo "installing tuspy into a virtualenv under $work..." >&2
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check tuspy >&2

bench_home
cat >"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[destinations.tus]
kind = "tus"
endpoint = "${endpoint[upq]}"
chunk_size = "${chunk_mib}MiB"
TOML
bench_upqd

file=$work/videos/bench.mp4
echo "writing a ${size_mib} MiB file..." >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$file"
size=$(stat -c %s "$file")

run_upq() {
    local id
    id=$("$upqctl" --socket "$socket" add "$file" --to tus) || fail "upqctl add failed"
    "$upqctl" --socket "$socket" wait "$id" --timeout 900s >/dev/null || fail "upq job $id did not publish"
}
run_tus_js_client() {
    node bench/tus/tus-js-client.mjs "$file" "${endpoint[tus-js-client]}" "$chunk_bytes" >/dev/null ||
        fail "tus-js-client failed"
}
run_tuspy() {
    "$work/venv/bin/python" bench/tus/tuspy-client.py "$file" "${endpoint[tuspy]}" "$chunk_bytes" >/dev/null ||
        fail "tuspy failed"
}
run_curl() {
    local location
    location=$(curl -sS -o /dev/null -D - -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
        "${endpoint[curl]}" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$location" ] || fail "curl: no Location from POST"
    curl -sS -f -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
        -H 'Content-Type: application/offset+octet-stream' -T "$file" "$location" ||
        fail "curl: PATCH failed"
}

# The one stored upload of a client must have the file's size.
verify() {
    local client=$1 data count=0 found=""
    for data in "${store[$client]}"/*; do
        case "$data" in *.json) continue ;; esac
        [ -f "$data" ] || continue
        count=$((count + 1))
        found=$data
    done
    [ "$count" -eq 1 ] || fail "$client: $count uploads stored, expected 1"
    [ "$(stat -c %s "$found")" -eq "$size" ] || fail "$client: stored $(stat -c %s "$found") bytes of $size"
}

declare -A times
for round in $(seq 1 "$rounds"); do
    # Rotate the order each round so no client always runs first on a cold cache.
    order=("${clients[@]:$(((round - 1) % 4))}" "${clients[@]:0:$(((round - 1) % 4))}")
    report="round $round:"
    for client in "${order[@]}"; do
        rm -rf "${store[$client]:?}"/*
        start=$(now)
        case $client in
            upq) run_upq ;;
            tus-js-client) run_tus_js_client ;;
            tuspy) run_tuspy ;;
            curl) run_curl ;;
        esac
        end=$(now)
        verify "$client"
        took=$(elapsed "$start" "$end")
        times[$client]="${times[$client]:-} $took"
        report="$report $client ${took}s"
    done
    echo "$report" >&2
done

# shellcheck disable=SC2086
curl_secs=$(median ${times[curl]})
printf 'file: %d MiB, %d MiB chunks (curl: one PATCH), median of %d rounds, @tus/server FileStore over loopback\n' \
    "$size_mib" "$chunk_mib" "$rounds"
printf '%-15s %9s %10s %14s\n' client seconds MiB/s "vs curl"
for client in "${clients[@]}"; do
    # shellcheck disable=SC2086
    secs=$(median ${times[$client]})
    awk -v c="$client" -v s="$secs" -v mib="$size_mib" -v ref="$curl_secs" \
        'BEGIN { printf "%-15s %9.2f %10.1f %13.2fx\n", c, s, mib / s, ref / s }'
done
