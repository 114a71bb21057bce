"""Probe `http`: status, headers, JSON fields and p95 latency of an HTTP endpoint.

`request_headers` are sent with every request (e.g. `Authorization: "Bearer {{ host.data.api_token }}"`);
values under secret-looking names are secrets (`known_secrets` collects them when the probe is
built) and `describe()` shows only their names, as it shows a URL without its password or token.
"""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from orchestrator.diff import redact_line
from orchestrator.secret_names import REDACTED, is_secret_key
from orchestrator.units import parse_duration
from orchestrator.metrics import FAIL, PASS, p95
from orchestrator.probes.base import Probe, ProbeResult, check_bound

if TYPE_CHECKING:
    import requests


def _field(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(doc, list) and part.isdigit():
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(dotted)
    return doc


class HttpProbe(Probe):
    kind = "http"

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = []
        for name, rule in (body.get("headers") or {}).items():
            if isinstance(rule, dict) and "matches" in rule:
                try:
                    re.compile(rule["matches"])
                except re.error as exc:
                    issues.append((["headers", name, "matches"], f"not a regular expression: {exc}"))
        for name, value in (body.get("request_headers") or {}).items():
            if isinstance(value, str) and ("\n" in value or "\r" in value):
                issues.append((["request_headers", name], "a header value must be one line"))
        return issues

    @property
    def timeout(self) -> float:
        return parse_duration(self.body.get("timeout", "5s"))

    def describe(self) -> str:
        parts = [f"{self.body.get('method', 'GET')} {redact_line(self.body['url'])}"]
        sent = self.body.get("request_headers") or {}
        if sent:
            parts.append("sending " + ", ".join(f"{name}: {REDACTED if is_secret_key(name) else value}"
                                                for name, value in sent.items()))
        if "status" in self.body:
            parts.append(f"status {self.body['status']}")
        for name, rule in (self.body.get("headers") or {}).items():
            parts.append(f"header {name} " + ", ".join(f"{k} {v!r}" for k, v in rule.items()))
        for name, bound in (self.body.get("json") or {}).items():
            parts.append(f"json {name} " + " ".join(f"{k} {v}" for k, v in bound.items()))
        if "latency_p95" in self.body:
            lat = self.body["latency_p95"]
            parts.append(f"p95 < {lat['below']} over {lat.get('requests', 20)} requests")
        return "http: " + "; ".join(parts)

    def _request(self) -> tuple[requests.Response, float]:
        import requests  # only when probing: loading a plan must not import it (see hosts.prepare_imports_for)

        start = time.perf_counter()
        response = requests.request(self.body.get("method", "GET"), self.body["url"], timeout=self.timeout,
                                    headers=self.body.get("request_headers") or None, allow_redirects=False)
        return response, time.perf_counter() - start

    def measure(self) -> ProbeResult:
        response, elapsed = self._request()
        want = self.body.get("status")
        if want is not None and response.status_code != want:
            return ProbeResult(FAIL, response.status_code, f"status {response.status_code}, expected {want}: {response.text[:200]!r}")
        for name, rule in (self.body.get("headers") or {}).items():
            value = response.headers.get(name)
            if rule.get("present", True) and value is None:
                return ProbeResult(FAIL, None, f"header {name} missing")
            if rule.get("present") is False and value is not None:
                return ProbeResult(FAIL, value, f"header {name} present: {value!r}")
            if "equals" in rule and value != rule["equals"]:
                return ProbeResult(FAIL, value, f"header {name} is {value!r}, expected {rule['equals']!r}")
            if "matches" in rule and not re.search(rule["matches"], value or ""):
                return ProbeResult(FAIL, value, f"header {name} {value!r} does not match {rule['matches']!r}")
        value: Any = response.status_code
        details = [f"status {response.status_code} in {elapsed * 1000:.0f} ms"]
        if self.body.get("json"):
            try:
                doc = response.json()
            except ValueError:
                return ProbeResult(FAIL, None, f"response is not JSON: {response.text[:200]!r}")
            for name, bound in self.body["json"].items():
                try:
                    field_value = _field(doc, name)
                except (KeyError, IndexError):
                    return ProbeResult(FAIL, None, f"JSON field {name} missing")
                ok, text = check_bound(field_value, bound)
                if not ok:
                    return ProbeResult(FAIL, field_value, f"JSON {name}: {text}")
                details.append(f"{name} {text}")
        if "latency_p95" in self.body:
            lat = self.body["latency_p95"]
            timings = [elapsed] + [self._request()[1] for _ in range(int(lat.get("requests", 20)) - 1)]
            value = p95(timings)
            limit = parse_duration(lat["below"])
            if value >= limit:
                return ProbeResult(FAIL, value, f"p95 latency {value * 1000:.0f} ms ≥ {lat['below']}")
            details.append(f"p95 {value * 1000:.0f} ms")
        return ProbeResult(PASS, value, ", ".join(details))
