#!/bin/sh
# Runs the client examples against a real `tp driver` process: consumer first, then producer (the consumer must
# receive 100 frames intact; the producer sends 400, because the frames still in flight when a producer detaches
# end with its epoch and a loaded machine may delay the consumer), then the claim-path producer.
# usage: run_client_examples.sh TP PRODUCER CONSUMER CLAIM_PRODUCER
set -eu
tp=$1 producer=$2 consumer=$3 claim_producer=$4
. "$(dirname "$0")/../tp_test_driver.sh"
tp_test_begin tp-examples
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
tp_test_driver "$tp"
"$consumer" "$dir/bus" "$dir/shm" 100 20 > "$dir/consumer.out" 2>&1 &
consumer_pid=$!
tp_test_wait_for "$dir/consumer.out" attached "the consumer did not attach"
"$producer" "$dir/bus" "$dir/shm" 400
status=0
wait "$consumer_pid" || status=$?
cat "$dir/consumer.out"
[ "$status" -eq 0 ] || { echo "consumer failed ($status)"; exit 1; }
# the directories left out: the defaults, here from the environment as for any client
TP_BUS_DIR="$dir/bus" TP_CLIENT_ALLOWED_BASE_DIRS="$dir/shm" "$claim_producer"
echo "examples ok"
