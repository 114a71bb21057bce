"""The contract every probe kind implements (one module per kind).

`measure()` takes one reading. `run()` retries through tenacity: the probe
passes at the first good reading and fails only after `consecutive` bad ones
in a row, so one flaky answer does not roll back a healthy deploy.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, ClassVar

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from orchestrator import known_secrets
from orchestrator.hosts import Target
from orchestrator.metrics import FAIL, PASS, WARN  # noqa: F401 — the verdicts every probe returns
from orchestrator.template import render
from orchestrator.units import parse_duration

BOUNDS = {"lt": (operator.lt, "<"), "le": (operator.le, "≤"), "gt": (operator.gt, ">"),
          "ge": (operator.ge, "≥"), "eq": (operator.eq, "=")}


@dataclass
class ProbeResult:
    verdict: str
    value: Any
    detail: str
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.verdict != FAIL

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "value": self.value, "detail": self.detail, "attempts": self.attempts}


def check_bound(value: Any, bound: dict[str, Any]) -> tuple[bool, str]:
    """Compare a value with {lt|le|gt|ge|eq: x}; (ok, '0.93 ≥ 0.8')."""
    for key, limit in bound.items():
        fn, sym = BOUNDS[key]
        try:
            ok = fn(value, limit)
        except TypeError:
            ok = False
        if not ok:
            return False, f"{value!r} is not {sym} {limit!r}"
    return True, " and ".join(f"{value!r} {BOUNDS[k][1]} {v!r}" for k, v in bound.items())


class Probe:
    kind: ClassVar[str]
    default_consecutive: ClassVar[int] = 3

    def __init__(self, body: dict[str, Any], target: Target):
        self.body = render(body, target.data)
        known_secrets.harvest(self.body)  # a URL's password, a token parameter, an Authorization header
        self.target = target

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        return []

    def describe(self) -> str:
        raise NotImplementedError

    def preflight(self) -> None:
        """Read-only checks before anything changes (InputError: bad input, e.g. an unknown service)."""

    def measure(self) -> ProbeResult:
        raise NotImplementedError

    def run(self) -> ProbeResult:
        retry = self.body.get("retry") or {}
        consecutive = int(retry.get("consecutive", self.default_consecutive))
        interval = parse_duration(retry.get("interval", "1s"))
        attempts = 0

        def once() -> ProbeResult:
            nonlocal attempts
            attempts += 1
            try:
                return self.measure()
            except Exception as exc:  # an unreachable endpoint is a failed reading, not a crash
                return ProbeResult(FAIL, None, f"{type(exc).__name__}: {exc}")

        result = Retrying(
            stop=stop_after_attempt(consecutive),
            wait=wait_fixed(interval),
            retry=retry_if_result(lambda r: not r.ok),
            retry_error_callback=lambda state: state.outcome.result(),
        )(once)
        result.attempts = attempts
        return result
