"""SIGKILL at every journal point, then `rollout rollback`: the host is as before (issue 6.1).

The point lists are what an uninterrupted run journals; `test_*_points_are_complete`
proves each list equals a real run's journal, so no point is left untested.
"""
from __future__ import annotations

import pytest

from crash import clean_run_points, crash_and_recover
from helpers import REPO

FAST = ["--soak", "1s", "--soak-every", "1s"]

DAY1 = ["after:start:", "after:step:0", "after:undo:0", "after:done:0", "after:step:1", "after:undo:1",
        "after:done:1", "after:step:2", "after:probe:2", "after:done:2", "after:step:3", "after:soak:3",
        "after:done:3", "after:probe:0", "after:probe:1", "after:end:"]
# A heap budget below the working set: the recreate fails and the run rolls itself back.
DAY1_FAILING = ["after:start:", "after:step:0", "after:undo:0", "after:done:0", "after:step:1", "after:undo:1",
                "after:failed:", "after:rollback_start:", "after:undone:0", "after:undone:1", "after:probe:0",
                "after:probe:1", "after:probe:2", "after:rollback_end:", "after:end:"]


@pytest.fixture
def tiny_heap_plan(tmp_path):
    plan = tmp_path / "day1.yaml"
    plan.write_text((REPO / "plans/day1.yaml").read_text().replace("--max-old-space-size=384", "--max-old-space-size=64"))
    return str(plan)


def test_day1_points_are_complete(demo_stack, tiny_heap_plan):
    assert clean_run_points(demo_stack, "day1", FAST) == DAY1
    assert clean_run_points(demo_stack, tiny_heap_plan, FAST, expect_exit=1) == DAY1_FAILING


@pytest.mark.parametrize("point", DAY1)
def test_day1_crash(demo_stack, point):
    crash_and_recover(demo_stack, "day1", point, FAST)


@pytest.mark.parametrize("point", DAY1_FAILING)
def test_day1_crash_during_failing_run(demo_stack, tiny_heap_plan, point):
    crash_and_recover(demo_stack, tiny_heap_plan, point, FAST)
