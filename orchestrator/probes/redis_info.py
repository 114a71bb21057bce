"""Probe `redis_info`: a Redis INFO field, or the cache hit rate over a window.

`metric: hit_rate` is keyspace_hits / (keyspace_hits + keyspace_misses) as a
DELTA: the counters are read at the end of `warmup` and at the end of
`window`, so the number reflects traffic under the new settings, not the
server's history. Any other metric is an INFO field read at the end of the
window (numbers are compared as numbers).

`traffic` (optional) drives GET requests from the controller during warm-up
and window: request i asks for key n = i % keys, at `rate` per second, so
after the warm-up nearly every request of a healthy cache is a hit. Without
`traffic` the probe only measures whatever traffic the service gets.

Redis is reached through `clients.redis`, as by the `redis_config` step (docker exec into the
service's container, or a redis:// URL).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.engine import require_service
from orchestrator.units import format_duration, parse_duration
from orchestrator.probes.base import FAIL, PASS, BOUNDS, Probe, ProbeResult, check_bound
from orchestrator.clients.redis import endpoint_check, endpoint_of

HIT_RATE = "hit_rate"


@dataclass
class TrafficStats:
    requests: int = 0
    errors: int = 0
    last_error: str = ""

    def text(self) -> str:
        out = f"traffic {self.requests} request(s)"
        if self.errors:
            out += f", {self.errors} failed (last: {self.last_error})"
        return out


class Traffic:
    """Paced, bounded GETs at `url`: request i is due at start + i/rate and asks for key i % keys.

    A few worker threads share the schedule (worker w sends requests w, w+N, …), so a
    slow answer (a cache miss) does not lower the rate; at most N requests are in flight.
    """

    MAX_WORKERS = 8

    def __init__(self, url: str, keys: int, rate: float, timeout: float = 5.0):
        self.url, self.keys, self.rate, self.timeout = url, keys, rate, timeout
        self.stats = TrafficStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = 0.0
        workers = max(1, min(self.MAX_WORKERS, int(rate // 5) + 1))
        self._threads = [threading.Thread(target=self._worker, args=(w, workers), name=f"redis_info-traffic-{w}",
                                          daemon=True) for w in range(workers)]

    def start(self) -> "Traffic":
        self._started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> TrafficStats:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 1)
        return self.stats

    def _worker(self, first: int, step: int) -> None:
        import requests  # only when probing: loading a plan must not import it (see hosts.prepare_imports_for)

        with requests.Session() as session:
            i = first
            while True:
                delay = self._started + i / self.rate - time.monotonic()
                if self._stop.wait(max(0.0, delay)):
                    break
                url = self.url.replace("{n}", str(i % self.keys))
                error = ""
                try:
                    response = session.get(url, timeout=self.timeout)
                    if response.status_code >= 400:
                        error = f"status {response.status_code}"
                except requests.RequestException as exc:
                    error = f"{type(exc).__name__}: {exc}"[:200]
                with self._lock:
                    self.stats.requests += 1
                    if error:
                        self.stats.errors += 1
                        self.stats.last_error = error
                i += step


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


class RedisInfoProbe(Probe):
    kind = "redis_info"
    default_consecutive = 1  # one reading is a whole window of traffic; `retry` can ask for more

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = endpoint_check(body)
        if body.get("metric") == HIT_RATE:
            for key, limit in (body.get("bound") or {}).items():
                if isinstance(limit, (int, float)) and not 0 <= limit <= 1:
                    issues.append((["bound", key], f"a hit rate is a ratio between 0 and 1, not {limit} (80 % is 0.8)"))
            if "window" in body:
                try:
                    if parse_duration(body["window"]) <= 0:
                        issues.append((["window"], "the window must be longer than zero"))
                except ValueError:
                    pass  # the schema reports it
        traffic = body.get("traffic") or {}
        if traffic and "{n}" not in str(traffic.get("url", "")) and traffic.get("keys", 20) > 1:
            issues.append((["traffic", "url"], "the URL needs {n} (the key number), or set `keys: 1`"))
        return issues

    @property
    def metric(self) -> str:
        return self.body["metric"]

    @property
    def warmup(self) -> float:
        return parse_duration(self.body.get("warmup", "0s"))

    @property
    def window(self) -> float:
        return parse_duration(self.body.get("window", "10s" if self.metric == HIT_RATE else "0s"))

    def describe(self) -> str:
        ep = endpoint_of(self.target, self.body)
        bound = " and ".join(f"{BOUNDS[k][1]} {v}" for k, v in self.body["bound"].items())
        what = "hit rate" if self.metric == HIT_RATE else f"INFO {self.metric}"
        text = f"redis_info: {ep.where} {what} {bound}"
        if self.window or self.warmup:
            text += f" over {format_duration(self.window)} after a {format_duration(self.warmup)} warm-up"
        traffic = self.body.get("traffic")
        if traffic:
            text += (f" (traffic: {traffic.get('rate', 10):g} GET/s over {traffic.get('keys', 20)} key(s) "
                     f"at {traffic['url']})")
        return text

    def preflight(self) -> None:
        if self.body.get("service"):
            require_service(self.target, self.body["service"])

    def measure(self) -> ProbeResult:
        ep = endpoint_of(self.target, self.body)
        ep.info("server")  # reachable before any traffic is sent
        traffic = None
        spec = self.body.get("traffic")
        if spec:
            traffic = Traffic(spec["url"], int(spec.get("keys", 20)), float(spec.get("rate", 10))).start()
        try:
            time.sleep(self.warmup)
            before = ep.info("stats") if self.metric == HIT_RATE else {}
            time.sleep(self.window)
            after = ep.info("stats" if self.metric == HIT_RATE else None)
        finally:
            stats = traffic.stop() if traffic else None
        load = f"; {stats.text()}" if stats else ""
        if self.metric == HIT_RATE:
            try:
                hits = int(after["keyspace_hits"]) - int(before["keyspace_hits"])
                misses = int(after["keyspace_misses"]) - int(before["keyspace_misses"])
            except (KeyError, ValueError):
                return ProbeResult(FAIL, None, "INFO stats has no keyspace_hits/keyspace_misses")
            window = f"over {format_duration(self.window)} after a {format_duration(self.warmup)} warm-up"
            if hits + misses <= 0:
                return ProbeResult(FAIL, None, f"no cache lookups (keyspace hits + misses did not change) {window}; "
                                               f"nothing to measure a hit rate on{load}")
            value = round(hits / (hits + misses), 4)
            counts = f"hits +{hits}, misses +{misses} {window}{load}"
            ok, text = check_bound(value, self.body["bound"])
            return ProbeResult(PASS if ok else FAIL, value, f"hit rate {text} ({counts})")
        if self.metric not in after:
            return ProbeResult(FAIL, None, f"INFO has no field {self.metric!r}")
        value = _number(after[self.metric])
        ok, text = check_bound(value, self.body["bound"])
        return ProbeResult(PASS if ok else FAIL, value, f"{self.metric} {text}{load}")
