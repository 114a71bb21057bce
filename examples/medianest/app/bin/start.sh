#!/bin/sh
# MediaNest API stand-in: container entrypoint.
#
# Allocates the working set (APP_WORKING_SET_MB MB written to a file on the
# /ballast tmpfs: tmpfs pages are charged to this container's memory cgroup,
# so `docker stats` sees them), then execs a forking TCP server that runs
# handler.sh once per connection. Exec'd so SIGTERM reaches the server at once.
set -eu

STATE=${APP_STATE_DIR:-/tmp/medianest}
BALLAST=${APP_BALLAST_DIR:-/ballast}
ws=${APP_WORKING_SET_MB:-96}
case $ws in '' | *[!0-9]*) echo "start.sh: APP_WORKING_SET_MB must be a number of MB, got '$ws'" >&2; exit 2 ;; esac

rm -rf "$STATE"
mkdir -p "$STATE" "$BALLAST"
: >"$STATE/latency.log"
echo 0 >"$STATE/fail_health"
date +%s >"$STATE/started"

if ! grep -q " $BALLAST tmpfs " /proc/mounts; then
    echo "start.sh: warning: $BALLAST is not a tmpfs, the working set will not count as memory" >&2
fi
rm -f "$BALLAST/hold"
dd if=/dev/zero of="$BALLAST/working-set" bs=1M count="$ws" 2>/dev/null
echo "medianest-api: working set ${ws} MB, NODE_OPTIONS='${NODE_OPTIONS:-}', CACHE_MIDDLEWARE=${CACHE_MIDDLEWARE:-off}, listening on :${PORT:-3000}" >&2

# busybox nc: two -l keep listening and fork a handler per connection, and the
# number of -l flags is the listen(2) backlog. With -ll alone the backlog is 2:
# a burst of parallel clients overflows the accept queue, SYNs are dropped and
# clients stall for the 1 s SYN retransmit. 128 flags give a backlog of 128.
listen=-l
while [ ${#listen} -le 128 ]; do listen="${listen}l"; done
exec nc "$listen" -p "${PORT:-3000}" -e /bin/sh /app/bin/handler.sh
