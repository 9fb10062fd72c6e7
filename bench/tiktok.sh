#!/usr/bin/env bash
# Times upq's TikTok destination against curl doing the same protocol by hand: one inbox
# init, the same chunk plan PUT chunk by chunk over one connection (`curl --next`), one
# status fetch. Both talk to their own copy of the in-repo conformance server over
# loopback. The video is a real ffmpeg-made MP4 grown to size with a trailing `free` box.
# The script starts its own servers and release upqd and stops only those, by PID.
#
# Usage: bench/tiktok.sh                  (1000 MB, 3 rounds, 10 MB chunks)
#   UPQ_BENCH_MB=500 UPQ_BENCH_ROUNDS=5 UPQ_BENCH_CHUNK_MB=64 bench/tiktok.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mb=${UPQ_BENCH_MB:-1000}
rounds=${UPQ_BENCH_ROUNDS:-3}
chunk_mb=${UPQ_BENCH_CHUNK_MB:-10}
size=$((size_mb * 1000000))
chunk=$((chunk_mb * 1000000))

cd "$root"
for tool in curl ffmpeg python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
if [ "$size" -le 64000000 ] || [ "$chunk" -lt 5000000 ] || [ "$chunk" -gt 64000000 ]; then
    echo "bench: use a file over 64 MB and chunks of 5 to 64 MB" >&2
    exit 1
fi
. bench/common.sh
bench_binaries
server_bin=$bin_dir/upq-tiktok-server
bench_setup tiktok
bench_scratch

clients=(upq curl)
declare -A api token
for client in "${clients[@]}"; do
    # The server keeps what it receives under TMPDIR: in memory when /dev/shm is there
    # (the disk's writeback of one client's upload otherwise slows down whichever client
    # runs next), emptied after every round and removed at the end.
    mkdir -p "$scratch/server-$client"
    TMPDIR=$scratch/server-$client "$server_bin" --processing-polls 0 --max-pending-shares 1000 \
        </dev/null >"$work/server-$client.out" 2>"$work/server-$client.log" &
    pids+=("$!")
    line=$(wait_line "$work/server-$client.out" '^listening on ' "$!")
    read -r _ _ api[$client] _ token[$client] <<<"$line"
done

bench_home

file=$work/videos/bench.mp4
echo "making a ${size_mb} MB video..." >&2
ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i testsrc2=size=1080x1920:rate=30 -t 1 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$file"
python3 - "$file" "$size" <<'PY'
import os, struct, sys
path, size = sys.argv[1], int(sys.argv[2])
pad = size - os.path.getsize(path)
with open(path, "ab") as f:
    f.write(struct.pack(">I", pad) + b"free")
    block = os.urandom(1 << 20)
    left = pad - 8
    while left > 0:
        n = min(left, len(block))
        f.write(block[:n])
        left -= n
PY
[ "$(stat -c %s "$file")" -eq "$size" ] || fail "the video is not $size bytes"

printf '%s\n' "${token[upq]}" >"$work/token"
cat >"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[destinations.tiktok]
kind = "tiktok"
api_base = "${api[upq]}"
access_token_file = "$work/token"
mode = "inbox"
chunk_size = "${chunk_mb}MB"
TOML
bench_upqd

# The plan upq uses for this size and chunk (the final chunk absorbs the remainder).
count=$((size / chunk))
json='application/json; charset=UTF-8'

run_upq() {
    local id
    id=$("$upqctl" --socket "$socket" add "$file" --to tiktok 2>/dev/null) || fail "upqctl add failed"
    "$upqctl" --socket "$socket" wait "$id" --timeout 900s >/dev/null || fail "upq job $id did not publish"
}

# Chunks for curl are cut before the clock starts (curl cannot send a byte range of a
# file); each is streamed with -T. The upload_url's path ends in "/", to which -T would
# append the file's name, so the exact target is given with --request-target.
split_for_curl() {
    mkdir -p "$work/chunks"
    local i=0 offset len
    while [ "$i" -lt "$count" ]; do
        offset=$((i * chunk))
        len=$chunk
        [ $((i + 1)) -eq "$count" ] && len=$((size - offset))
        dd if="$file" of="$work/chunks/$i" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$len" status=none
        i=$((i + 1))
    done
}

run_curl() {
    local reply publish_id url origin target_path i offset len args=()
    reply=$(curl -sS -f -X POST -H "Authorization: Bearer ${token[curl]}" -H "Content-Type: $json" \
        --data "{\"source_info\":{\"source\":\"FILE_UPLOAD\",\"video_size\":$size,\"chunk_size\":$chunk,\"total_chunk_count\":$count}}" \
        "${api[curl]}/v2/post/publish/inbox/video/init/") || fail "curl: init failed"
    publish_id=$(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["publish_id"])')
    url=$(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["upload_url"])')
    origin=$(printf '%s' "$url" | sed -E 's#^(https?://[^/]+).*#\1#')
    target_path=${url#"$origin"}
    i=0
    while [ "$i" -lt "$count" ]; do
        offset=$((i * chunk))
        len=$chunk
        [ $((i + 1)) -eq "$count" ] && len=$((size - offset))
        [ "$i" -gt 0 ] && args+=(--next)
        args+=(-sS -f -o /dev/null -X PUT -H "Content-Type: video/mp4"
            -H "Content-Range: bytes $offset-$((offset + len - 1))/$size" -T "$work/chunks/$i"
            --request-target "$target_path" "$origin/")
        i=$((i + 1))
    done
    curl "${args[@]}" || fail "curl: a PUT failed"
    curl -sS -f -X POST -H "Authorization: Bearer ${token[curl]}" -H "Content-Type: $json" \
        --data "{\"publish_id\":\"$publish_id\"}" "${api[curl]}/v2/post/publish/status/fetch/" |
        grep -q SEND_TO_USER_INBOX || fail "curl: the upload did not complete"
}

echo "cutting $count chunks for curl..." >&2
split_for_curl

declare -A times
for round in $(seq 1 "$rounds"); do
    order=("${clients[@]:$(((round - 1) % 2))}" "${clients[@]:0:$(((round - 1) % 2))}")
    report="round $round:"
    for client in "${order[@]}"; do
        # What this script wrote (the video, curl's chunks) goes to disk before the clock
        # starts: upq makes its queue database durable after every chunk, and on ext4 a
        # sync also waits for other files' dirty pages, which would charge the script's
        # own writes to upq.
        sync
        start=$(now)
        case $client in
            upq) run_upq ;;
            curl) run_curl ;;
        esac
        end=$(now)
        took=$(elapsed "$start" "$end")
        find "$scratch/server-$client" -name '*.video' -delete
        times[$client]="${times[$client]:-} $took"
        report="$report $client ${took}s"
    done
    echo "$report" >&2
done

# shellcheck disable=SC2086
curl_secs=$(median ${times[curl]})
printf 'file: %d MB in %d chunks of %d MB, median of %d rounds, conformance server over loopback\n' \
    "$size_mb" "$count" "$chunk_mb" "$rounds"
printf '%-8s %9s %8s %10s\n' client seconds MB/s "vs curl"
for client in "${clients[@]}"; do
    # shellcheck disable=SC2086
    secs=$(median ${times[$client]})
    awk -v c="$client" -v s="$secs" -v mb="$size_mb" -v ref="$curl_secs" \
        'BEGIN { printf "%-8s %9.2f %8.1f %9.2fx\n", c, s, mb / s, ref / s }'
done
