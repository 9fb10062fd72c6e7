# Shared by the benchmark scripts (sourced, not run): a work folder removed at exit, the
# processes a script started (stopped at exit, by PID), waiting for ready lines, timing,
# medians, and a home of upq's own for the release upqd.
#
# Usage: . bench/common.sh; bench_setup NAME

# Creates $work and arranges the clean-up; add the PID of every process started to pids.
bench_setup() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/upq-bench-$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
    [ -z "${scratch:-}" ] || rm -rf "$scratch"
}

# Sets $scratch to a folder in memory (/dev/shm) when there is one, else under $work:
# servers store uploads there, so that the disk's writeback does not drown out the
# clients being compared. Removed at exit.
bench_scratch() {
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        scratch=$(mktemp -d /dev/shm/upq-bench.XXXXXX)
    else
        scratch=$work/scratch
        mkdir -p "$scratch"
    fi
}

fail() {
    echo "bench: $*" >&2
    for log in "$work"/*.log; do
        [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Waits until FILE has a line matching PATTERN, while PID lives; prints that line.
wait_line() {
    local file=$1 pattern=$2 pid=$3 deadline=$((SECONDS + 30))
    until grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || fail "$file: the process exited before it was ready"
        [ "$SECONDS" -lt "$deadline" ] || fail "$file: not ready within 30 s"
        sleep 0.05
    done
    grep -m 1 "$pattern" "$file"
}

# XDG folders under $work, so the release upqd touches nothing of the user's.
bench_home() {
    mkdir -p "$work"/{home,config,data,runtime,videos} "$work/config/upq"
    chmod 700 "$work/runtime"
    export HOME=$work/home XDG_CONFIG_HOME=$work/config XDG_DATA_HOME=$work/data XDG_RUNTIME_DIR=$work/runtime
    unset UPQ_CONFIG UPQ_DATA_DIR UPQ_SOCKET DBUS_SESSION_BUS_ADDRESS
}

# Starts the release upqd (no D-Bus) and sets $socket from its ready line.
bench_upqd() {
    "$upqd" --no-dbus >"$work/upqd.out" 2>"$work/upqd.log" &
    pids+=("$!")
    local line
    line=$(wait_line "$work/upqd.out" ' listening on ' "$!")
    socket=${line##* listening on }
    socket=${socket% (desk *}
}

# Builds upq and sets $upqd, $upqctl and $bin_dir: the release build, or with
# UPQ_BENCH_SMOKE=1 the debug build the test suite already made (CI runs every bench that
# way, with tiny sizes, so that the scripts never rot; its figures mean nothing).
bench_binaries() {
    local profile=release target
    if [ "${UPQ_BENCH_SMOKE:-0}" = 1 ]; then
        profile=debug
        echo "smoke run: debug build, figures are not measurements" >&2
        cargo build --bins >&2
    else
        echo "building release binaries..." >&2
        cargo build --release --bins >&2
    fi
    target=${CARGO_TARGET_DIR:-$root/target}
    case "$target" in /*) ;; *) target=$root/$target ;; esac
    bin_dir=$target/$profile
    upqd=$bin_dir/upqd
    upqctl=$bin_dir/upqctl
}
