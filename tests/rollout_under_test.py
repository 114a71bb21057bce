"""`rollout` as the tests run it: the real CLI plus a crash hook the shipped command lacks.

    python tests/rollout_under_test.py ARGS…     (what tests/helpers.py rollout()/rollout_bg() run)

With ROLLOUT_FAULT=POINT in the environment, the process kills itself with SIGKILL
right after the journal record named POINT is durably written; that is how the crash
tests stop a run at an exact point. Without it, this is `rollout` unchanged. The
shipped `rollout` never reads ROLLOUT_FAULT: the hook lives here, installed through
the neutral `orchestrator.journal.observers` extension point.

A point is named PHASE:TYPE:WHERE, from the records this process writes:
  - TYPE is the record's type (`start`, `step`, `undo`, `done`, `probe`, `soak`, `failed`,
    `rollback_start`, `undone`, `rollback_end`, `end`);
  - WHERE is the record's `step` (a step index) or `index` (a validate probe's index), else empty;
  - PHASE is the record's own `phase` when it has one (`validate` or `verify`: the plan's
    probes after an apply, and again after a rollback); otherwise `rollback` once this
    process has written a `rollback_start` (that record included), else `apply`;
  - a name this process already used gets `#2`, `#3`, … (a step with two undo records).

So `apply:undo:0`, `apply:probe:2` (check step 2), `validate:probe:0`, `apply:failed:`,
`rollback:rollback_start:`, `rollback:undone:1`, `verify:probe:0`, `rollback:end:`;
every point of one process is distinct. `rollout rollback` writes only rollback-phase points.
"""
from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import Any


class PointNamer:
    """Names each record written by one process (the rule in the module docstring)."""

    def __init__(self) -> None:
        self.rolling_back = False
        self.seen: Counter[str] = Counter()

    def name(self, record: dict[str, Any]) -> str:
        if record["t"] == "rollback_start":
            self.rolling_back = True
        phase = record.get("phase") or ("rollback" if self.rolling_back else "apply")
        name = f"{phase}:{record['t']}:{record.get('step', record.get('index', ''))}"
        self.seen[name] += 1
        return name if self.seen[name] == 1 else f"{name}#{self.seen[name]}"


def point_names(records: list[dict[str, Any]]) -> list[str]:
    """The points of records written by one process, in order (used to check the tests' lists)."""
    namer = PointNamer()
    return [namer.name(r) for r in records]


def install(point: str) -> None:
    from orchestrator import journal

    namer = PointNamer()

    def kill_at_point(_journal: Any, record: dict[str, Any]) -> None:
        if namer.name(record) == point:
            os.kill(os.getpid(), signal.SIGKILL)

    journal.observers.append(kill_at_point)


if __name__ == "__main__":
    # This checkout's package, as `python -m orchestrator` from the repository would import it,
    # and not the test modules beside this file.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.environ.get("ROLLOUT_FAULT"):
        install(os.environ["ROLLOUT_FAULT"])
    from orchestrator.cli import main

    main(prog_name="rollout")
