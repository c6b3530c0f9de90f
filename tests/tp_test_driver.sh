# Shell helpers of the tests that run processes around a `tp driver` (sourced by tests/*/run_*.sh).
#   tp_test_begin NAME            a fresh directory $dir (with $dir/shm), removed with every process started by
#                                 tp_test_bg when the script exits
#   tp_test_driver TP             `tp driver $dir/driver.toml` in the background, returned once its status file is
#                                 there (10 s at most; its log is printed if it never starts)
#   tp_test_bg CMD...             run CMD in the background, killed at exit; its pid in $last_pid
#   tp_test_wait_for FILE TEXT WHAT   wait (20 s at most) until FILE contains TEXT, or print FILE and fail
tp_test_pids=
tp_test_cleanup() {
    for p in $tp_test_pids; do kill "$p" 2>/dev/null || true; done
    for p in $tp_test_pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
tp_test_begin() {
    dir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap tp_test_cleanup EXIT
    mkdir "$dir/shm"
}
tp_test_bg() {
    "$@" &
    last_pid=$!
    tp_test_pids="$tp_test_pids $last_pid"
}
tp_test_driver() {
    tp_test_bg "$1" driver "$dir/driver.toml" 2>"$dir/driver.log"
    i=0
    until [ -f "$dir/bus/driver-1000.json" ]; do
        i=$((i + 1))
        if [ $i -gt 200 ]; then cat "$dir/driver.log"; echo "the driver did not start"; exit 1; fi
        sleep 0.05
    done
}
tp_test_wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 400 ]; then cat "$1"; echo "$3"; exit 1; fi
        sleep 0.05
    done
}
