"""SIGKILL at every journal point, then `rollout rollback`: the host is as before (issues 6.1, 10.4).

Points are named PHASE:TYPE:WHERE (the rule is in tests/rollout_under_test.py, the test entry
that alone carries the crash hook). Each list is what an uninterrupted process journals; the
test killed after its last point compares the list with that process's journal, so no point goes
untested. One stack per worker is reused while every test leaves it restored (which is what they
assert); a failed test marks it dirty and the next test gets a fresh one.

Three matrices:
- the apply of each day's plan, killed at each of its points (and day2 over budget, killed at
  the points of the rollback it starts by itself);
- the automatic rollback of a run that fails its probe, killed at each of its points, for every
  step kind that has an undo (compose_limits, file_swap, image_build, redis_config, recreate);
- `rollout rollback` itself (of a succeeded run of the same plan), killed at each of its points,
  after which a second `rollout rollback` finishes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crash import crash_and_recover, differences, rollback_crash_and_recover, snapshot
from helpers import REPO
from stack import DemoStack

FAST = ["--soak", "1s", "--soak-every", "1s"]


def steps(*kinds_per_step: str) -> list[str]:
    """Apply-phase points of steps whose records are given as e.g. 'undo', 'probe', ''."""
    points = []
    for i, middle in enumerate(kinds_per_step):
        points += [f"apply:step:{i}"] + [f"apply:{k}:{i}" for k in middle.split() if k] + [f"apply:done:{i}"]
    return points


def probes(n: int, phase: str = "validate") -> list[str]:
    return [f"{phase}:probe:{i}" for i in range(n)]


def rollback(undone: list[int], verify: int) -> list[str]:
    """Points of a rollback that undoes these steps in this order, then verifies with `verify` probes."""
    return (["rollback:rollback_start:"] + [f"rollback:undone:{i}" for i in undone] + probes(verify, "verify")
            + ["rollback:rollback_end:", "rollback:end:"])


START, END = ["apply:start:"], ["apply:end:"]
DAY1 = START + steps("undo", "undo", "probe", "soak") + probes(3) + END
DAY2 = START + steps("undo", "undo", "probe", "undo") + probes(1) + END
DAY3 = START + steps("undo", "undo", "probe", "undo", "probe") + probes(2) + END
# day2 with a bundle over budget: the check before the recreate fails and the run rolls itself back.
DAY2_OVER = START + steps("undo", "undo") + ["apply:step:2", "apply:probe:2", "apply:failed:"] + rollback([1, 0], 1)

# Every step kind that has an undo, in one plan. Its rollback undoes steps 3, 2, 1, 0, then the
# recreate (undone last, once the files are restored). The broken variant adds a check the new
# state fails at once (Cache-Control, but the cache middleware stays off), so the run rolls itself
# back; the plain one succeeds, for `rollout rollback` to undo.
ALL_KINDS = """\
plan: allkinds
version: 1
title: every step kind with an undo
hosts: app_servers
steps:
  - id: limits
    compose_limits:
      service: app
      limits: {memory: 1G, cpus: "0.75"}
      environment: {NODE_OPTIONS: "--max-old-space-size=384"}
  - id: config
    file_swap: {source: frontend/next.config.optimized.js, destination: frontend/next.config.js}
  - id: build
    image_build:
      context: frontend
      dockerfile: Dockerfile.optimized
      target: frontend-production
      tag: "{{ host.data.frontend_image }}"
      keep_as: stable
  - id: redis
    redis_config:
      service: redis
      set: {maxmemory-policy: allkeys-lru, maxmemory: 384mb, tcp-keepalive: 300}
  - id: recreate
    recreate: {services: [app, frontend]}
validate:
  - http:
      url: "http://127.0.0.1:{{ host.data.app_port }}/api/health"
      status: 200
      retry: {consecutive: 5, interval: 1s}
on_failure: rollback
"""
FAILING_CHECK = """\
  - id: cache-headers
    check:
      http:
        url: "http://127.0.0.1:{{ host.data.app_port }}/api/media/1"
        headers: {Cache-Control: {equals: "public, max-age=300, must-revalidate"}}
        retry: {consecutive: 1}
"""
ALL_KINDS_BROKEN = ALL_KINDS.replace("validate:\n", FAILING_CHECK + "validate:\n")
ROLLBACK_ALL_KINDS = rollback([3, 2, 1, 0, 4], 1)
ALL_KINDS_BROKEN_POINTS = (START + steps("undo", "undo", "undo", "undo", "undo") + ["apply:step:5", "apply:probe:5"]
                           + ["apply:failed:"] + ROLLBACK_ALL_KINDS)
AUTO_ROLLBACK_POINTS = ALL_KINDS_BROKEN_POINTS[ALL_KINDS_BROKEN_POINTS.index("apply:failed:"):]


def variant(tmp_path, day: str, old: str, new: str) -> str:
    text = (REPO / "plans" / f"{day}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{day}.yaml"
    path.write_text(text.replace(old, new))
    return str(path)


PLANS = {
    "day1": ("day1", DAY1),
    "day2": ("day2", DAY2),
    "day2-over-budget": (("day2", "next.config.optimized.js", "next.config.oversize.js"), DAY2_OVER),
    # the same steps and journal points, with a shorter hit-rate window (the warm-up stays: it
    # fills the cache of the Redis the redis step recreated, whatever the machine's load)
    "day3": (("day3", "window: 10s", "window: 2s"), DAY3),
}


@pytest.fixture(scope="module")
def stack_pool(docker_engine, tmp_path_factory):
    pool: dict[str, DemoStack] = {}
    yield pool
    for stack in pool.values():
        stack.down()


@pytest.fixture
def crash_stack(stack_pool, tmp_path_factory):
    stack = stack_pool.get("stack")
    if stack is None or stack.dirty:
        if stack is not None:
            stack.down()
        stack = DemoStack(tmp_path_factory.mktemp("crash"))
        stack_pool["stack"] = stack
        stack.up()
    stack.dirty = True  # until the test proves the host restored
    return stack


def plan_arg(name: str, tmp_path) -> str:
    spec = PLANS[name][0]
    return spec if isinstance(spec, str) else variant(tmp_path, *spec)


@pytest.mark.parametrize("name, point", [(name, p) for name, (_, points) in PLANS.items() for p in points])
def test_crash_then_rollback_restores(crash_stack, tmp_path, name, point):
    points = PLANS[name][1]
    # A new apply over the crashed run must refuse and say to roll back; checked at the first
    # point where something is applied (the refusal logic does not depend on which point).
    # Killed after its `end` record, the run journaled every point: the list is checked complete.
    crash_and_recover(crash_stack, plan_arg(name, tmp_path), point, FAST, check_refusal=point == "apply:undo:0",
                      all_points=points if point == points[-1] else None)


def all_kinds_plan(tmp_path, text: str) -> str:
    path = tmp_path / "allkinds.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("point", AUTO_ROLLBACK_POINTS)
def test_crash_during_the_automatic_rollback_of_every_step_kind(crash_stack, tmp_path, point):
    crash_and_recover(crash_stack, all_kinds_plan(tmp_path, ALL_KINDS_BROKEN), point, FAST,
                      all_points=ALL_KINDS_BROKEN_POINTS if point == AUTO_ROLLBACK_POINTS[-1] else None)


@pytest.mark.parametrize("point", ROLLBACK_ALL_KINDS)
def test_crash_of_rollout_rollback_itself_then_a_second_rollback_restores(crash_stack, tmp_path, point):
    rollback_crash_and_recover(crash_stack, all_kinds_plan(tmp_path, ALL_KINDS), point, FAST,
                               all_points=ROLLBACK_ALL_KINDS if point == ROLLBACK_ALL_KINDS[-1] else None)


FLAG = """\
plan: flag
version: 1
title: one compose change, no recreate
hosts: app_servers
steps:
  - compose_limits: {service: app, environment: {FEATURE_FLAG: "on"}}
validate:
  - http: {url: "http://127.0.0.1:{{ host.data.app_port }}/api/health", status: 200}
"""


def test_the_shipped_rollout_has_no_crash_hook(crash_stack, tmp_path):
    """ROLLOUT_FAULT is the test entry's hook: the console script and `python -m orchestrator` ignore it."""
    assert not (REPO / "orchestrator" / "faults.py").exists()
    assert not [p for p in (REPO / "orchestrator").rglob("*.py") if "ROLLOUT_FAULT" in p.read_text()]
    inv = str(crash_stack.inventory_path)
    plan = tmp_path / "flag.yaml"
    plan.write_text(FLAG)
    before = snapshot(crash_stack)
    console_script = Path(sys.executable).parent / "rollout"

    def run(argv: list[str], fault: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=REPO, env={**os.environ, "ROLLOUT_FAULT": fault}, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=240)

    # The old name of the point right after the start record, and the test entry's name for it.
    for fault in ("after:start:", "apply:start:"):
        applied = run([str(console_script), "apply", str(plan), "-i", inv, "--yes"], fault)
        assert applied.returncode == 0, f"ROLLOUT_FAULT={fault}: exit {applied.returncode}\n{applied.stdout}{applied.stderr}"
        back = run([sys.executable, "-m", "orchestrator", "rollback", str(plan), "-i", inv, "--yes"],
                   fault.replace("start", "rollback_start").replace("apply", "rollback"))
        assert back.returncode == 0, f"exit {back.returncode}\n{back.stdout}{back.stderr}"
        assert "rolled back and verified" in back.stdout + back.stderr
    assert differences(before, snapshot(crash_stack)) == {}
    crash_stack.dirty = False


def test_point_names_carry_the_phase_and_are_distinct():
    """The records that shared a name under the old `after:TYPE:WHERE` scheme get distinct points."""
    from rollout_under_test import point_names

    records = [{"t": "start"}, {"t": "undo", "step": 0}, {"t": "undo", "step": 0}, {"t": "probe", "step": 2},
               {"t": "probe", "phase": "validate", "index": 2}, {"t": "failed"}, {"t": "rollback_start"},
               {"t": "undone", "step": 0}, {"t": "probe", "phase": "verify", "index": 2}, {"t": "rollback_end"},
               {"t": "end"}]
    assert point_names(records) == [
        "apply:start:", "apply:undo:0", "apply:undo:0#2", "apply:probe:2", "validate:probe:2", "apply:failed:",
        "rollback:rollback_start:", "rollback:undone:0", "verify:probe:2", "rollback:rollback_end:", "rollback:end:"]
    assert point_names([{"t": "end"}]) == ["apply:end:"]  # the end of a run that did not roll back
