#!/bin/sh
# Runs the quickstart program of docs/GUIDE.md against a real `tp driver` serving stream 10000, configured
# through the environment as the guide says (CLIENT_BUS_DIR, CLIENT_ALLOWED_BASE_DIRS).
# usage: run_guide_quickstart.sh TP QUICKSTART
set -eu
tp=$1 quickstart=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/tp-guide.XXXXXX")
driver=
cleanup() {
    [ -n "$driver" ] && kill "$driver" 2>/dev/null && wait "$driver" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/shm"
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
"$tp" driver "$dir/driver.toml" 2>"$dir/driver.log" &
driver=$!
i=0
until [ -f "$dir/bus/driver-1000.json" ]; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then cat "$dir/driver.log"; echo "the driver did not start"; exit 1; fi
    sleep 0.05
done
CLIENT_BUS_DIR="$dir/bus" CLIENT_ALLOWED_BASE_DIRS="$dir/shm" "$quickstart"
echo "quickstart ok"
