#!/bin/sh
# Runs the client examples against a real `tp driver` process: consumer first, then producer (the consumer must
# receive 100 frames intact; the producer sends 400, because the frames still in flight when a producer detaches
# end with its epoch and a loaded machine may delay the consumer), then the claim-path producer.
# usage: run_client_examples.sh TP PRODUCER CONSUMER CLAIM_PRODUCER
set -eu
tp=$1 producer=$2 consumer=$3 claim_producer=$4
dir=$(mktemp -d "${TMPDIR:-/tmp}/tp-examples.XXXXXX")
driver=
cleanup() {
    [ -n "$driver" ] && kill "$driver" 2>/dev/null && wait "$driver" 2>/dev/null
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
header_nslots = 64
payload_pools = [ { pool_id = 1, stride_bytes = 4096 }, { pool_id = 2, stride_bytes = 65536 } ]
[streams.main]
stream_id = 10000
profile = "small"
EOF
"$tp" driver "$dir/driver.toml" 2>"$dir/driver.log" &
driver=$!
# Ready once the driver wrote its status file (bounded wait).
i=0
until [ -f "$dir/bus/driver-1000.json" ]; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then cat "$dir/driver.log"; echo "the driver did not start"; exit 1; fi
    sleep 0.05
done
"$consumer" "$dir/bus" "$dir/shm" 100 20 > "$dir/consumer.out" 2>&1 &
consumer_pid=$!
i=0
until grep -q attached "$dir/consumer.out"; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then cat "$dir/consumer.out"; echo "the consumer did not attach"; exit 1; fi
    sleep 0.05
done
"$producer" "$dir/bus" "$dir/shm" 400
status=0
wait "$consumer_pid" || status=$?
cat "$dir/consumer.out"
[ "$status" -eq 0 ] || { echo "consumer failed ($status)"; exit 1; }
"$claim_producer" "$dir/bus" "$dir/shm" 50
echo "examples ok"
