#!/usr/bin/env bash
# Times upq's tus destination against tus-js-client, tuspy and curl, each uploading the same
# file to its own tus server over loopback, in two passes:
# - defaults: every client as its user gets it (upq without chunk_size, tus-js-client and
#   tuspy without a chunk size);
# - equal chunking: every client with the same chunk size.
# curl sends the whole file in one PATCH in both passes: the ceiling and the reference.
# The servers are @tus/server (FileStore, Node.js) and, when `rustus` is on PATH, rustus
# (file storage, its body limit raised to 2 GiB). The servers store into /dev/shm when it
# exists, so that disk writeback does not drown out the clients. The script starts its own
# servers and upqd and stops only those, by PID.
#
# Usage: bench/tus.sh                     (1 GiB, 3 rounds, 8 MiB chunks in the second pass)
#   UPQ_BENCH_MIB=256 UPQ_BENCH_ROUNDS=5 UPQ_BENCH_CHUNK_MIB=16 bench/tus.sh
#   UPQ_BENCH_SERVERS="tus-server" bench/tus.sh      (one server only)
#   UPQ_BENCH_SMOKE=1 UPQ_BENCH_MIB=4 UPQ_BENCH_ROUNDS=1 bench/tus.sh   (what CI runs)
# tuspy is installed with pip into a virtualenv inside the script's temp folder (removed at
# the end); tus-js-client comes from bench/tus/package-lock.json (npm ci).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${UPQ_BENCH_MIB:-1024}
rounds=${UPQ_BENCH_ROUNDS:-3}
chunk_mib=${UPQ_BENCH_CHUNK_MIB:-8}
chunk_bytes=$((chunk_mib * 1024 * 1024))
default_servers="tus-server"
command -v rustus >/dev/null && default_servers="tus-server rustus"
read -r -a servers <<<"${UPQ_BENCH_SERVERS:-$default_servers}"

cd "$root"
command -v node >/dev/null || { echo "bench: Node.js is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: curl is required" >&2; exit 1; }
. bench/common.sh
bench_binaries

for dir in tests/tus-server bench/tus; do
    if [ ! -d "$dir/node_modules" ]; then
        echo "npm ci in $dir..." >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
done

bench_setup tus
bench_scratch

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts a SERVER storing into DIR; sets $url to its creation URL. (Not in a subshell:
# the server's PID must reach $pids, so that the clean-up stops it.)
start_server() {
    local server=$1 dir=$2 name=$3 port
    case $server in
        tus-server)
            UPQ_TUS_WATCH_STDIN=0 node tests/tus-server/server.mjs "$dir" \
                </dev/null >"$work/$name.out" 2>"$work/$name.log" &
            pids+=("$!")
            line=$(wait_line "$work/$name.out" '^listening on ' "$!")
            url=${line#listening on }
            ;;
        rustus)
            port=$(free_port)
            rustus --host 127.0.0.1 --port "$port" --data-dir "$dir" --info-dir "$dir" \
                --max-body-size $((2 * 1024 * 1024 * 1024)) --log-level WARN \
                </dev/null >"$work/$name.out" 2>"$work/$name.log" &
            pids+=("$!")
            local deadline=$((SECONDS + 30))
            until curl -s -o /dev/null -X OPTIONS "http://127.0.0.1:$port/files/"; do
                kill -0 "$!" 2>/dev/null || fail "rustus exited before it was ready"
                [ "$SECONDS" -lt "$deadline" ] || fail "rustus not ready within 30 s"
                sleep 0.05
            done
            url="http://127.0.0.1:$port/files/"
            ;;
        *) fail "unknown server $server (tus-server or rustus)" ;;
    esac
}

clients=(upq tus-js-client tuspy curl)
passes=(defaults equal)
declare -A endpoint store
for server in "${servers[@]}"; do
    for client in "${clients[@]}"; do
        key=$server/$client
        store[$key]=$scratch/store-$server-$client
        mkdir -p "${store[$key]}"
        start_server "$server" "${store[$key]}" "server-$server-$client"
        endpoint[$key]=$url
    done
done

echo "installing tuspy into a virtualenv under $work..." >&2
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check tuspy >&2

# One upqd; each server has two destinations: at the defaults, and with chunk_size.
bench_home
for server in "${servers[@]}"; do
    cat >>"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[destinations.$server]
kind = "tus"
endpoint = "${endpoint[$server/upq]}"

[destinations.$server-chunked]
kind = "tus"
endpoint = "${endpoint[$server/upq]}"
chunk_size = "${chunk_mib}MiB"

TOML
done
bench_upqd

file=$work/videos/bench.mp4
echo "writing a ${size_mib} MiB file..." >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$file"
size=$(stat -c %s "$file")

# run CLIENT SERVER PASS
run() {
    local client=$1 server=$2 pass=$3 url=${endpoint[$2/$1]} chunk=() id location
    [ "$pass" = equal ] && chunk=("$chunk_bytes")
    case $client in
        upq)
            local destination=$server
            [ "$pass" = equal ] && destination=$server-chunked
            id=$("$upqctl" --socket "$socket" add "$file" --to "$destination") || fail "upqctl add failed"
            "$upqctl" --socket "$socket" wait "$id" --timeout 900s >/dev/null ||
                fail "upq job $id did not publish"
            ;;
        tus-js-client)
            node bench/tus/tus-js-client.mjs "$file" "$url" "${chunk[@]}" >/dev/null ||
                fail "tus-js-client failed"
            ;;
        tuspy)
            "$work/venv/bin/python" bench/tus/tuspy-client.py "$file" "$url" "${chunk[@]}" >/dev/null ||
                fail "tuspy failed"
            ;;
        curl)
            location=$(curl -sS -o /dev/null -D - -X POST -H 'Tus-Resumable: 1.0.0' \
                -H "Upload-Length: $size" "$url" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
            [ -n "$location" ] || fail "curl: no Location from POST"
            case $location in /*) location=${url%%/files*}$location ;; esac
            curl -sS -f -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
                -H 'Content-Type: application/offset+octet-stream' -T "$file" "$location" ||
                fail "curl: PATCH failed"
            ;;
    esac
}

# The one stored upload of a client must hold the file's size.
verify() {
    local key=$1 data count=0 found=""
    for data in "${store[$key]}"/*; do
        case "$data" in *.json | *.info) continue ;; esac
        [ -f "$data" ] || continue
        count=$((count + 1))
        found=$data
    done
    [ "$count" -eq 1 ] || fail "$key: $count uploads stored, expected 1"
    [ "$(stat -c %s "$found")" -eq "$size" ] || fail "$key: stored $(stat -c %s "$found") bytes of $size"
}

declare -A times
for round in $(seq 1 "$rounds"); do
    for server in "${servers[@]}"; do
        for pass in "${passes[@]}"; do
            # Rotate the order each round so no client always runs first on a cold cache.
            shift_by=$(((round - 1) % 4))
            order=("${clients[@]:$shift_by}" "${clients[@]:0:$shift_by}")
            report="round $round, $server, $pass:"
            for client in "${order[@]}"; do
                key=$server/$client
                rm -rf "${store[$key]:?}"/*
                start=$(now)
                run "$client" "$server" "$pass"
                end=$(now)
                verify "$key"
                # Nothing stays in memory for the next client (/dev/shm is RAM).
                rm -rf "${store[$key]:?}"/*
                took=$(elapsed "$start" "$end")
                times[$server/$pass/$client]="${times[$server/$pass/$client]:-} $took"
                report="$report $client ${took}s"
            done
            echo "$report" >&2
        done
    done
done

printf 'file: %d MiB, median of %d rounds over loopback; curl sends one PATCH in both passes\n' \
    "$size_mib" "$rounds"
for server in "${servers[@]}"; do
    for pass in "${passes[@]}"; do
        case $pass in
            defaults) echo "== $server, every client at its defaults" ;;
            equal) echo "== $server, every chunked client at ${chunk_mib} MiB chunks" ;;
        esac
        # shellcheck disable=SC2086
        curl_secs=$(median ${times[$server/$pass/curl]})
        printf '%-15s %9s %10s %10s\n' client seconds MiB/s "vs curl"
        for client in "${clients[@]}"; do
            # shellcheck disable=SC2086
            secs=$(median ${times[$server/$pass/$client]})
            # shellcheck disable=SC2086
            spread=$(printf '%s\n' ${times[$server/$pass/$client]} | sort -g | sed -n '1p;$p' | paste -sd- -)
            awk -v c="$client" -v s="$secs" -v mib="$size_mib" -v ref="$curl_secs" -v sp="$spread" \
                'BEGIN { printf "%-15s %9.2f %10.1f %9.2fx  (rounds %s s)\n", c, s, mib / s, ref / s, sp }'
        done
    done
done
