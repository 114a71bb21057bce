"""SIGKILL at every journal point, then `rollout rollback`: the host is as before (issue 6.1)."""
from __future__ import annotations

from crash import crash_every_point
from helpers import REPO

FAST = ["--soak", "1s", "--soak-every", "1s"]


def report(day: str, restored: int, total: int, failures: list[str]) -> None:
    print(f"\n{day}: {restored}/{total} crash points restored")
    assert not failures, "\n".join(failures)


def test_day1_every_crash_point_is_restored(demo_stack):
    report("day1", *crash_every_point(demo_stack, "day1", FAST))


def test_day1_crash_during_the_automatic_rollback_is_restored(demo_stack, tmp_path):
    # A heap budget below the working set: the run fails, rolls back by itself, and is
    # killed at each point of that rollback too.
    plan = tmp_path / "day1.yaml"
    plan.write_text((REPO / "plans/day1.yaml").read_text().replace("--max-old-space-size=384", "--max-old-space-size=64"))
    restored, total, failures = crash_every_point(demo_stack, str(plan), FAST, expect_exit=1)
    report("day1 (failing run)", restored, total, failures)
