#!/usr/bin/env bash
# Times upq's YouTube destination at its default settings (no chunk_size: the whole file in
# one PUT) against curl doing the same resumable protocol by hand: one session start, one PUT
# of the whole file, one processing poll. Both talk to their own copy of the in-repo
# conformance server over loopback; every upload is compared with the source afterwards.
# The server does not look inside the video, so the file is random bytes.
# The script starts its own servers and release upqd and stops only those, by PID.
#
# Usage: bench/youtube.sh                 (1 GiB, 3 rounds)
#   UPQ_BENCH_MIB=256 UPQ_BENCH_ROUNDS=5 bench/youtube.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${UPQ_BENCH_MIB:-1024}
rounds=${UPQ_BENCH_ROUNDS:-3}
size=$((size_mib * 1024 * 1024))

cd "$root"
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
[ "$size" -gt 0 ] || { echo "bench: UPQ_BENCH_MIB must be at least 1" >&2; exit 1; }
. bench/common.sh
bench_binaries
server_bin=$bin_dir/upq-youtube-server
bench_setup youtube
bench_scratch

clients=(upq curl)
declare -A api token
for client in "${clients[@]}"; do
    # Received bytes go under TMPDIR: in memory when /dev/shm is there, checked and emptied
    # after every upload. No processing polls, and room for any number of rounds.
    mkdir -p "$scratch/server-$client"
    TMPDIR=$scratch/server-$client "$server_bin" --processing-polls 0 --daily-quota 1000000000 \
        --insert-calls 1000000 --upload-limit 1000000 \
        </dev/null >"$work/server-$client.out" 2>"$work/server-$client.log" &
    pids+=("$!")
    line=$(wait_line "$work/server-$client.out" '^listening on ' "$!")
    read -r _ _ "api[$client]" _ "token[$client]" <<<"$line"
done

bench_home

file=$work/videos/bench.mp4
echo "writing a ${size_mib} MiB file..." >&2
head -c "$size" /dev/urandom >"$file"

cat >"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[destinations.youtube]
kind = "youtube"
api_base = "${api[upq]}"
access_token = "${token[upq]}"
TOML
bench_upqd

json='application/json; charset=UTF-8'
resource='{"snippet":{"title":"bench","categoryId":"22"},"status":{"privacyStatus":"public","selfDeclaredMadeForKids":false}}'

run_upq() {
    local id
    id=$("$upqctl" --socket "$socket" add "$file" --to youtube --privacy public \
        --meta made_for_kids=false 2>/dev/null) || fail "upqctl add failed"
    "$upqctl" --socket "$socket" wait "$id" --timeout 900s >/dev/null || fail "upq job $id did not publish"
}

# The session URI is absolute and carries a query, so -T sends to it as it is; `Expect:`
# turns off curl's wait for a 100 Continue before a large body.
run_curl() {
    local session reply id deadline=$((SECONDS + 30))
    session=$(curl -sS -f -o /dev/null -w '%header{location}' -X POST \
        -H "Authorization: Bearer ${token[curl]}" -H "Content-Type: $json" \
        -H "X-Upload-Content-Length: $size" -H "X-Upload-Content-Type: video/mp4" \
        --data "$resource" \
        "${api[curl]}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status") ||
        fail "curl: the session start failed"
    [ -n "$session" ] || fail "curl: the session start gave no Location"
    reply=$(curl -sS -f -X PUT -H 'Expect:' -H "Content-Type: video/mp4" \
        -H "Content-Range: bytes 0-$((size - 1))/$size" -T "$file" "$session") ||
        fail "curl: the PUT failed"
    id=$(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    until curl -sS -f -H "Authorization: Bearer ${token[curl]}" \
        "${api[curl]}/youtube/v3/videos?part=processingDetails,status&id=$id" |
        grep -q '"uploadStatus": *"processed"'; do
        [ "$SECONDS" -lt "$deadline" ] || fail "curl: video $id was not processed within 30 s"
        sleep 0.1
    done
}

# The one upload the client's server holds must be the source, byte for byte.
check_and_empty() {
    local received
    mapfile -t received < <(find "$scratch/server-$1" -name '*.video')
    [ "${#received[@]}" -eq 1 ] || fail "$1: the server holds ${#received[@]} uploads, not 1"
    cmp -s "$file" "${received[0]}" || fail "$1: the upload differs from the source"
    rm -f "${received[0]}"
}

declare -A times
for round in $(seq 1 "$rounds"); do
    order=("${clients[@]:$(((round - 1) % 2))}" "${clients[@]:0:$(((round - 1) % 2))}")
    report="round $round:"
    for client in "${order[@]}"; do
        # The script's own writes go to disk before the clock starts: upq makes its queue
        # database durable as it goes, and a sync would otherwise wait for them too.
        sync
        start=$(now)
        case $client in
            upq) run_upq ;;
            curl) run_curl ;;
        esac
        end=$(now)
        took=$(elapsed "$start" "$end")
        check_and_empty "$client"
        times[$client]="${times[$client]:-} $took"
        report="$report $client ${took}s"
    done
    echo "$report" >&2
done

# shellcheck disable=SC2086
curl_secs=$(median ${times[curl]})
printf 'file: %d MiB in one PUT (upq defaults), median of %d rounds, conformance server over loopback\n' \
    "$size_mib" "$rounds"
printf '%-8s %9s %8s %10s %s\n' client seconds MiB/s "vs curl" "rounds (s)"
for client in "${clients[@]}"; do
    # shellcheck disable=SC2086
    secs=$(median ${times[$client]})
    # shellcheck disable=SC2086
    spread=$(printf '%s\n' ${times[$client]} | sort -g | paste -sd ' ')
    awk -v c="$client" -v s="$secs" -v mib="$size_mib" -v ref="$curl_secs" -v r="$spread" \
        'BEGIN { printf "%-8s %9.2f %8.1f %9.2fx %s\n", c, s, mib / s, ref / s, r }'
done
