#!/usr/bin/env bash
# The queue at scale: JOBS jobs (default 100,000) added to a paused queue, each reply
# durable: half of them one request a job over one socket connection, pipelined, and half
# with `upqctl add -` (paths on stdin, sent as add_many requests); then `upqctl list --all --json`, the daemon's
# RSS, a cold start with every job in the database, and the CPU an idle daemon uses over
# 10 s. Each figure is printed beside its goal. Starts its own upqd and stops only that one,
# by its PID.
#
# Usage: bench/scale.sh                 (100,000 jobs)
#   UPQ_BENCH_JOBS=20000 bench/scale.sh
#   UPQ_BENCH_SMOKE=1 UPQ_BENCH_JOBS=500 bench/scale.sh   (what CI runs)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=${UPQ_BENCH_JOBS:-100000}
idle_secs=${UPQ_BENCH_IDLE_SECS:-10}
cd "$root"
. bench/common.sh
bench_binaries
bench_setup scale
bench_home
cat >"$XDG_CONFIG_HOME/upq/config.toml" <<TOML
[destinations.local]
kind = "dir"
path = "$work/outbox"
TOML
head -c 65536 /dev/urandom >"$work/videos/clip.mp4"
mkdir -p "$work/outbox"

start_upqd() {
    "$upqd" --no-dbus >"$work/upqd.out" 2>>"$work/upqd.log" &
    upqd_pid=$!
    pids+=("$upqd_pid")
    local line
    line=$(wait_line "$work/upqd.out" ' listening on ' "$upqd_pid")
    socket=${line##* listening on }
    socket=${socket% (desk *}
}
stop_upqd() {
    kill -TERM "$upqd_pid"
    wait "$upqd_pid" 2>/dev/null || true
    : >"$work/upqd.out"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$upqd_pid/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$upqd_pid/stat"; }

start_upqd
"$upqctl" --socket "$socket" pause --all >/dev/null

# Pipelined adds: a writer thread sends every request, the main thread reads the replies.
half=$((jobs / 2))
add_secs=$(python3 - "$socket" "$work/videos/clip.mp4" "$half" <<'PY'
import json, socket, sys, threading, time
path, clip, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = socket.socket(socket.AF_UNIX)
conn.connect(path)
reader = conn.makefile("rb")
json.loads(reader.readline())  # hello
payload = b"".join(
    json.dumps({"id": i + 1, "method": "add", "params": {"file": clip}}).encode() + b"\n"
    for i in range(count)
)
start = time.monotonic()
writer = threading.Thread(target=conn.sendall, args=(payload,))
writer.start()
for i in range(count):
    reply = json.loads(reader.readline())
    if "error" in reply:
        sys.exit(f"add {i + 1} failed: {reply}")
writer.join()
print(f"{time.monotonic() - start:.3f}")
PY
)

python3 -c 'import sys; sys.stdout.write((sys.argv[1] + "\n") * int(sys.argv[2]))' \
    "$work/videos/clip.mp4" $((jobs - half)) >"$work/paths.txt"
many_start=$(now)
"$upqctl" --socket "$socket" add - <"$work/paths.txt" >"$work/many.out" || fail "upqctl add - failed"
many_end=$(now)
[ "$(wc -l <"$work/many.out")" -eq $((jobs - half)) ] || fail "upqctl add - did not print every id"

list_start=$(now)
"$upqctl" --socket "$socket" list --all --json >"$work/list.json"
list_end=$(now)
listed=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/list.json")
[ "$listed" -eq "$jobs" ] || fail "list --all shows $listed jobs of $jobs"
rss=$(rss_kib)

stop_upqd
cold_start=$(now)
start_upqd
cold_end=$(now)

sleep 1 # what start-up leaves to finish is not idleness
before=$(cpu_ticks)
sleep "$idle_secs"
after=$(cpu_ticks)

awk -v n="$jobs" -v half="$half" -v add="$add_secs" -v many="$(elapsed "$many_start" "$many_end")" -v ls="$(elapsed "$list_start" "$list_end")" -v rss="$rss" \
    -v cold="$(elapsed "$cold_start" "$cold_end")" -v idle=$((after - before)) -v secs="$idle_secs" 'BEGIN {
    printf "%d jobs in a paused queue, local destination\n", n
    printf "%-28s %14s %14s %8s\n", "measure", "upq", "goal", "ratio"
    printf "%-28s %11.0f /s %11d /s %7.2fx\n", "add, pipelined requests", half / add, 5000, (half / add) / 5000
    printf "%-28s %11.0f /s %11d /s %7.2fx\n", "add -, many files a request", (n - half) / many, 5000, ((n - half) / many) / 5000
    printf "%-28s %12.2f s %12.2f s %7.2fx\n", "list --all --json", ls, 1, 1 / ls
    printf "%-28s %10.1f MiB %10d MiB %7.2fx\n", "RSS after adding", rss / 1024, 100, 100 / (rss / 1024)
    printf "%-28s %12.2f s %12.2f s %7.2fx\n", "cold start", cold, 1, 1 / cold
    printf "%-28s %8d ticks %8d ticks\n", "idle CPU over " secs " s", idle, 0
}'
