#!/bin/sh
# Runs the join stage example in its three modes (join barrier spec appendix A) against a real `tp driver`
# process, with `tp produce` processes as its inputs. Each mode must make 20 outputs.
# usage: run_join_examples.sh TP JOIN_STAGE
set -eu
tp=$1 join_stage=$2
. "$(dirname "$0")/../tp_test_driver.sh"
tp_test_begin tp-join-examples
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
tp_test_driver "$tp"
run_mode() {
    mode=$1 first=$2 first_rate=$3 second=$4 second_rate=$5
    "$join_stage" "$mode" "$dir/bus" "$dir/shm" 20 > "$dir/$mode.out" 2>&1 &
    stage=$!
    tp_test_wait_for "$dir/$mode.out" attached "the $mode stage did not attach"
    inputs=
    for input in "$first:$first_rate" "$second:$second_rate"; do
        tp_test_bg "$tp" produce "${input%:*}" --size 64 --rate "${input#*:}" --seconds 25 --trace \
            --bus-dir "$dir/bus" --allowed-base-dirs "$dir/shm" > /dev/null 2>>"$dir/$mode.producers.log"
        inputs="$inputs $last_pid"
    done
    status=0
    wait "$stage" || status=$?
    for p in $inputs; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    tail -n 1 "$dir/$mode.out"
    [ "$status" -eq 0 ] || { cat "$dir/$mode.out" "$dir/$mode.producers.log"; echo "$mode failed"; exit 1; }
}
run_mode lockstep 10001 200 10002 200
run_mode camera-imu 10001 30 10003 200
run_mode data-config 10001 100 10002 2
echo "join examples ok"
