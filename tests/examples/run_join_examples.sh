#!/bin/sh
# Runs the join stage example in its three modes (join barrier spec appendix A) against a real `tp driver`
# process, with `tp produce` processes as its inputs. Each mode must make 20 outputs.
# usage: run_join_examples.sh TP JOIN_STAGE
set -eu
tp=$1 join_stage=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/tp-join-examples.XXXXXX")
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/shm"
cat > "$dir/driver.toml" <<EOF
[driver]
bus_dir = "$dir/bus"
[shm]
base_dir = "$dir/shm"
[policies]
prefault_shm = false
[profiles.small]
header_nslots = 256
payload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]
[streams.fused]
stream_id = 9000
profile = "small"
[streams.camera-a]
stream_id = 10001
profile = "small"
[streams.camera-b]
stream_id = 10002
profile = "small"
[streams.imu]
stream_id = 10003
profile = "small"
EOF
"$tp" driver "$dir/driver.toml" 2>"$dir/driver.log" &
pids="$!"
i=0
until [ -f "$dir/bus/driver-1000.json" ]; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then cat "$dir/driver.log"; echo "the driver did not start"; exit 1; fi
    sleep 0.05
done
run_mode() {
    mode=$1 first=$2 first_rate=$3 second=$4 second_rate=$5
    "$join_stage" "$mode" "$dir/bus" "$dir/shm" 20 > "$dir/$mode.out" 2>&1 &
    stage=$!
    i=0
    until grep -q attached "$dir/$mode.out"; do
        i=$((i + 1))
        if [ $i -gt 400 ]; then cat "$dir/$mode.out"; echo "the $mode stage did not attach"; exit 1; fi
        sleep 0.05
    done
    "$tp" produce "$first" --size 64 --rate "$first_rate" --seconds 25 --trace --bus-dir "$dir/bus" \
        --allowed-base-dirs "$dir/shm" > /dev/null 2>"$dir/$mode.p1.log" &
    p1=$!
    "$tp" produce "$second" --size 64 --rate "$second_rate" --seconds 25 --trace --bus-dir "$dir/bus" \
        --allowed-base-dirs "$dir/shm" > /dev/null 2>"$dir/$mode.p2.log" &
    p2=$!
    status=0
    wait "$stage" || status=$?
    kill "$p1" "$p2" 2>/dev/null || true
    wait "$p1" 2>/dev/null || true
    wait "$p2" 2>/dev/null || true
    tail -n 1 "$dir/$mode.out"
    [ "$status" -eq 0 ] || { cat "$dir/$mode.out" "$dir/$mode.p1.log" "$dir/$mode.p2.log"; echo "$mode failed"; exit 1; }
}
run_mode lockstep 10001 200 10002 200
run_mode camera-imu 10001 30 10003 200
run_mode data-config 10001 100 10002 2
echo "join examples ok"
