#!/bin/sh
# Runs the quickstart program of docs/GUIDE.md against a real `tp driver` serving stream 10000, configured
# through the environment as the guide says (TP_CLIENT_BUS_DIR, TP_CLIENT_ALLOWED_BASE_DIRS).
# usage: run_guide_quickstart.sh TP QUICKSTART
set -eu
tp=$1 quickstart=$2
. "$(dirname "$0")/../tp_test_driver.sh"
tp_test_begin tp-guide
cat > "$dir/driver.toml" <<CONFIG
[driver]
bus_dir = "$dir/bus"
[shm]
base_dir = "$dir/shm"
[policies]
prefault_shm = false
[profiles.small]
header_nslots = 16
payload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]
[streams.main]
stream_id = 10000
profile = "small"
CONFIG
tp_test_driver "$tp"
TP_CLIENT_BUS_DIR="$dir/bus" TP_CLIENT_ALLOWED_BASE_DIRS="$dir/shm" "$quickstart"
echo "quickstart ok"
