#!/bin/sh
# MediaNest API stand-in: one HTTP exchange per process.
#
# `nc -ll -e` (see start.sh) connects the client socket to stdin/stdout and
# forks one handler per connection. Every response carries Content-Type,
# Content-Length and `Connection: close`; the process then exits, which closes
# the socket. State shared between requests lives in files under
# $APP_STATE_DIR (counters, latencies) and $APP_BALLAST_DIR (held memory).
#
# Routes
#   GET  /api/health                       200 {"status":"ok",...}
#                                          503 {"status":"unhealthy","reason":...}
#   GET  /api/performance/stats            {"p95_ms":..,"requests":..,...}
#   GET  /api/media/<id>                   cache-aside through Redis, header X-Cache: HIT|MISS
#   POST /api/debug/hold?mb=N              hold N MB more (replaces the previous hold; 0 releases)
#   POST /api/debug/fail-health?count=N    the next N health requests answer 503
#                                          (-1: until cleared, 0: clear)
#   GET  /static/<name>                    a static asset
#
# Heap model (what Node would do): the heap budget is --max-old-space-size
# from NODE_OPTIONS; the working set is APP_WORKING_SET_MB, really held in
# memory on the /ballast tmpfs. Working set > budget => /api/health is 503.
#
# CACHE_MIDDLEWARE=on adds `Cache-Control: public, max-age=300, must-revalidate`
# to every /api/* response and an immutable Cache-Control to /static/*.

STATE=${APP_STATE_DIR:-/tmp/medianest}
BALLAST=${APP_BALLAST_DIR:-/ballast}
CR=$(printf '\r')
VERSION=1.4.2

# Wall clock in microseconds (busybox date has no %N; adjtimex(2) read-only
# needs no privilege). Falls back to /proc/uptime (10 ms resolution).
now_us() {
    adjtimex 2>/dev/null | awk '
        /tv_sec/ { s = $2 } /tv_usec/ { u = $2 }
        END {
            if (s == "") { getline up < "/proc/uptime"; split(up, a, " "); printf "%.0f\n", a[1] * 1000000 }
            else printf "%d%06d\n", s, u
        }'
}

T0=$(now_us)

# ---------------------------------------------------------------- request
IFS=' ' read -t 10 -r method target proto || exit 0
proto=${proto%"$CR"}
clen=0
source=
while IFS= read -t 10 -r line; do
    line=${line%"$CR"}
    [ -n "$line" ] || break
    case $line in
        [Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]:*)
            clen=${line#*:}
            clen=${clen#"${clen%%[! ]*}"}
            ;;
    esac
done
case $clen in '' | *[!0-9]*) clen=0 ;; esac
# drain the body: closing a socket with unread input makes the kernel send RST
[ "$clen" -gt 0 ] && head -c "$clen" >/dev/null

path=${target%%\?*}
query=
case $target in *\?*) query=${target#*\?} ;; esac

# qparam NAME: REPLY=value of NAME in the query string; status 1 when absent
qparam() {
    REPLY=
    set -f
    _ifs=$IFS
    IFS='&'
    for kv in $query; do
        case $kv in
            "$1="*)
                REPLY=${kv#*=}
                IFS=$_ifs
                set +f
                return 0
                ;;
        esac
    done
    IFS=$_ifs
    set +f
    return 1
}
qparam source && source=$REPLY

# ---------------------------------------------------------------- response
CTYPE=application/json
NL="$CR
"

# respond STATUS BODY [HEADER...]: send the response, record its latency, exit
respond() {
    status=$1
    body=$2
    shift 2
    t1=$(now_us)
    us=$((t1 - T0))
    [ "$us" -ge 0 ] || us=0
    ms="$((us / 1000)).$(((us % 1000) / 100))"
    # requests of the container's own healthcheck are not counted
    [ "$source" = healthcheck ] || echo "$ms $method $path ${status%% *}" >>"$STATE/latency.log"
    head="HTTP/1.1 $status${NL}Server: medianest-api/$VERSION${NL}Content-Type: $CTYPE${NL}Content-Length: ${#body}${NL}"
    for h; do head="$head$h$NL"; done
    case $path in
        /api/*) [ "${CACHE_MIDDLEWARE:-off}" = on ] && head="${head}Cache-Control: public, max-age=300, must-revalidate$NL" ;;
    esac
    head="${head}X-Response-Time: ${ms}ms${NL}Connection: close$NL$NL"
    if [ "$method" = HEAD ]; then
        printf '%s' "$head"
    else
        printf '%s%s' "$head" "$body"
    fi
    exit 0
}

require_method() {
    [ "$method" = "$1" ] || respond "405 Method Not Allowed" "{\"error\":\"method not allowed\",\"allow\":\"$1\"}" "Allow: $1"
}

read_int() { # read_int FILE: REPLY=integer in FILE (0 when missing or garbled)
    REPLY=0
    [ -f "$1" ] && read -r REPLY <"$1"
    case $REPLY in '' | -*[!0-9]* | [!-]*[!0-9]*) REPLY=0 ;; esac
}

write_atomic() { # write_atomic FILE VALUE: readers never see a half-written file
    echo "$2" >"$1.$$" && mv -f "$1.$$" "$1"
}

lock() {
    _n=0
    while ! mkdir "$STATE/lock" 2>/dev/null; do
        _n=$((_n + 1))
        [ "$_n" -gt 200 ] && return 0 # stale lock after ~1 s: go ahead
        usleep 5000
    done
}
unlock() { rmdir "$STATE/lock" 2>/dev/null; }

heap_budget() { # sets budget (MB) and budget_source from NODE_OPTIONS
    budget=
    set -f
    for opt in ${NODE_OPTIONS:-}; do
        case $opt in --max-old-space-size=* | --max_old_space_size=*) budget=${opt#*=} ;; esac
    done
    set +f
    budget_source=NODE_OPTIONS
    case $budget in '' | *[!0-9]*) budget=2048 budget_source=default ;; esac
}

# injected_failure: status 0 when this health request must fail (consumes one)
injected_failure() {
    read_int "$STATE/fail_health"
    [ "$REPLY" = 0 ] && return 1
    [ "$REPLY" = -1 ] && { remaining=-1; return 0; }
    lock
    read_int "$STATE/fail_health"
    if [ "$REPLY" -gt 0 ]; then
        remaining=$((REPLY - 1))
        write_atomic "$STATE/fail_health" "$remaining"
        unlock
        return 0
    fi
    unlock
    return 1
}

# ---------------------------------------------------------------- routes
route_health() {
    ws=${APP_WORKING_SET_MB:-96}
    heap_budget
    read_int "$STATE/held_mb"
    held=$REPLY
    read_int "$STATE/started"
    uptime=$(($(date +%s) - REPLY))
    facts="\"working_set_mb\":$ws,\"heap_budget_mb\":$budget,\"heap_budget_source\":\"$budget_source\",\"held_mb\":$held"
    if [ "$source" != healthcheck ] && injected_failure; then
        respond "503 Service Unavailable" "{\"status\":\"unhealthy\",\"reason\":\"injected failure (POST /api/debug/fail-health), remaining $remaining\",$facts}"
    fi
    if [ "$ws" -gt "$budget" ]; then
        respond "503 Service Unavailable" "{\"status\":\"unhealthy\",\"reason\":\"heap working set ${ws} MB exceeds the heap budget of ${budget} MB (--max-old-space-size=${budget}): JavaScript heap out of memory\",$facts}"
    fi
    respond "200 OK" "{\"status\":\"ok\",\"version\":\"$VERSION\",\"uptime_s\":$uptime,$facts,\"cache_middleware\":\"${CACHE_MIDDLEWARE:-off}\"}"
}

route_stats() {
    read_int "$STATE/started"
    uptime=$(($(date +%s) - REPLY))
    total=$(wc -l <"$STATE/latency.log")
    summary=$(tail -n 1000 "$STATE/latency.log" | sort -n | awk '
        { v[NR] = $1 + 0; sum += $1 }
        function rank(p,   i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; return v[i] }
        END {
            if (NR == 0) { print "\"window\":0,\"p50_ms\":0,\"p95_ms\":0,\"p99_ms\":0,\"max_ms\":0,\"mean_ms\":0"; exit }
            printf "\"window\":%d,\"p50_ms\":%.1f,\"p95_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,\"mean_ms\":%.1f\n", NR, rank(0.50), rank(0.95), rank(0.99), v[NR], sum / NR
        }')
    respond "200 OK" "{\"requests\":$total,$summary,\"uptime_s\":$uptime,\"cache_middleware\":\"${CACHE_MIDDLEWARE:-off}\"}"
}

media_document() { # the "database" lookup behind the cache (slow on purpose)
    set -- $(printf '%s' "$id" | md5sum)
    usleep 20000
    REPLY="{\"id\":\"$id\",\"title\":\"Media $id\",\"type\":\"video\",\"duration_s\":$((0x${1%"${1#??????}"} % 7200 + 60)),\"renditions\":[\"1080p\",\"720p\",\"480p\"]}"
}

route_media() {
    id=${path#/api/media/}
    case $id in '' | *[!A-Za-z0-9_-]*) respond "400 Bad Request" '{"error":"invalid media id"}' ;; esac
    rc="redis-cli -h ${REDIS_HOST:-redis} -p ${REDIS_PORT:-6379}"
    if value=$($rc GET "media:$id" 2>/dev/null); then
        # redis-cli exits 0 on error replies (NOAUTH, LOADING, …): treat those as "cache unavailable"
        case $value in NOAUTH* | WRONGPASS* | ERR* | LOADING* | MISCONF*) value= ; media_document
            respond "200 OK" "$REPLY" "X-Cache: BYPASS" ;; esac
        [ -n "$value" ] && respond "200 OK" "$value" "X-Cache: HIT"
        media_document
        $rc SET "media:$id" "$REPLY" EX 3600 >/dev/null 2>&1
        respond "200 OK" "$REPLY" "X-Cache: MISS"
    fi
    # cache unavailable: serve from the "database"
    media_document
    respond "200 OK" "$REPLY" "X-Cache: BYPASS"
}

route_hold() {
    require_method POST
    qparam mb
    mb=$REPLY
    case $mb in '' | *[!0-9]*) respond "400 Bad Request" '{"error":"mb must be a non-negative integer (MB)"}' ;; esac
    mb=$((mb + 0))
    lock
    rm -f "$BALLAST/hold"
    write_atomic "$STATE/held_mb" 0
    if [ "$mb" -gt 0 ] && ! dd if=/dev/zero of="$BALLAST/hold" bs=1M count="$mb" 2>/dev/null; then
        rm -f "$BALLAST/hold"
        unlock
        respond "507 Insufficient Storage" "{\"error\":\"could not hold $mb MB\",\"held_mb\":0}"
    fi
    write_atomic "$STATE/held_mb" "$mb"
    unlock
    ws=${APP_WORKING_SET_MB:-96}
    respond "200 OK" "{\"held_mb\":$mb,\"working_set_mb\":$ws,\"total_mb\":$((ws + mb))}"
}

route_fail_health() {
    require_method POST
    qparam count
    count=$REPLY
    case $count in -1) ;; '' | *[!0-9]*) respond "400 Bad Request" '{"error":"count must be an integer >= -1"}' ;; esac
    [ "$count" = -1 ] || count=$((count + 0))
    lock
    write_atomic "$STATE/fail_health" "$count"
    unlock
    respond "200 OK" "{\"fail_health\":$count}"
}

route_static() {
    name=${path#/static/}
    case $name in '' | *[!A-Za-z0-9._-]* | .*) respond "404 Not Found" '{"error":"not found"}' ;; esac
    case $name in
        *.js) CTYPE=application/javascript ;;
        *.css) CTYPE=text/css ;;
        *.svg) CTYPE=image/svg+xml ;;
        *) CTYPE=application/octet-stream ;;
    esac
    if [ "${CACHE_MIDDLEWARE:-off}" = on ]; then
        respond "200 OK" "/* medianest static asset: $name */" "Cache-Control: public, max-age=31536000, immutable"
    fi
    respond "200 OK" "/* medianest static asset: $name */"
}

case $method in
    GET | HEAD | POST | PUT | DELETE | PATCH | OPTIONS) ;;
    *)
        method=GET
        path=/
        respond "400 Bad Request" '{"error":"bad request"}'
        ;;
esac

case $path in
    /api/health) route_health ;;
    /api/performance/stats) route_stats ;;
    /api/media/*) route_media ;;
    /api/debug/hold) route_hold ;;
    /api/debug/fail-health) route_fail_health ;;
    /static/*) route_static ;;
esac
case $path in
    *[!A-Za-z0-9/._~%-]*) respond "404 Not Found" '{"error":"not found"}' ;;
    *) respond "404 Not Found" "{\"error\":\"not found\",\"path\":\"$path\"}" ;;
esac
