#!/usr/bin/env bash
# How much of a 2 GB WebM each Matroska reader reads to find its headers (Info, Tracks):
# upq's own EBML reader and matroska-demuxer, counted by a wrapping reader, with timings.
#
# Usage: bench/webm_headers.sh [WEBM]   (without WEBM, one of about 2 GB is made with ffmpeg:
# a 10 s VP9 + Opus clip encoded once, then repeated with -stream_loop and -c copy).
# The test runs in a debug build with the file in the page cache: the bytes and seeks are the
# measure, the times only a hint.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
bench_setup webm

webm=${1:-}
if [ -z "$webm" ]; then
    command -v ffmpeg >/dev/null || fail "ffmpeg is needed to make the WebM"
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -t 10 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 40M -minrate 40M -maxrate 40M \
        -c:a libopus "$work/clip.webm"
    # 16 MB a clip: 131 of them make about 2.1 GB (UPQ_BENCH_SMOKE=1: 2 of them, for CI).
    loops=130
    [ "${UPQ_BENCH_SMOKE:-0}" = 1 ] && loops=1
    ffmpeg -hide_banner -loglevel error -y -stream_loop "$loops" -i "$work/clip.webm" -c copy "$work/big.webm"
    webm=$work/big.webm
fi
echo "WebM: $webm ($(stat -c %s "$webm") bytes)"
UPQ_BENCH_WEBM=$webm cargo test -q -p upq-daemon --lib webm_headers_cost_for_each_reader \
    -- --ignored --nocapture 2>&1 | grep -E '^(file|upq ebml|matroska-demuxer):|test result|panicked'
