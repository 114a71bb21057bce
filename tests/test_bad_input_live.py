"""The bad-input corpus against a LIVE stack (issue 6 part 3): `rollout apply BAD --yes` changes nothing.

tests/test_plan_errors.py proves each bad plan is reported exactly (by `load_plan`, and a few
through `rollout validate`). Here every one of them - and the host-level cases and bad
inventories - is handed to `rollout apply … --yes` aimed at ONE running demo stack, the
command that would change it. Each must exit 2 naming FILE:LINE: PATH (the same issues the
corpus expects), and afterwards the host must be exactly as before: operator files by
checksum, container IDs, limits, env and images, the frontend tag, the full Redis config,
no lock and no `.rollout` directory at all.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from crash import differences, snapshot
from helpers import REPO, rollout, sha256_file
from test_plan_errors import CASES, FILE, HOST_CASES, HOST_PLAN, INVENTORY_BROKEN, matches

SERVICES = ("app", "frontend", "redis")
NO_GHOST = "no service 'ghost' (services: app, frontend, redis)"
# More host-level cases, each only detectable on the host: (plan body after `steps:`, where, fragment).
LIVE_HOST_CASES = {
    "watch-unknown-service": ("  - watch: {service: ghost, for: 2s, every: 1s, fail: {memory_percent: 90}}",
                              "6: steps/0/watch/service", NO_GHOST),
    "redis-config-unknown-service": ("  - redis_config: {service: ghost, set: {maxmemory: '1'}}",
                                     "6: steps/0/redis_config/service", NO_GHOST),
    "redis-config-unknown-key": ("  - redis_config:\n      service: redis\n      set: {no-such-key: '1'}",
                                 "8: steps/0/redis_config/set", "has no config key(s) no-such-key"),
    "redis-config-missing-host-data": ("  - redis_config:\n      service: redis\n      set:\n"
                                       "        requirepass: '{{ host.data.redis_password }}'",
                                       "8: steps/0/redis_config/set", "the host has no data 'redis_password'"),
    "check-unknown-service": ("  - check: {stats: {service: ghost, fail: {memory_percent: 90}}}",
                              "6: steps/0/check", NO_GHOST),
    "build-context-missing": ("  - image_build: {context: nodir, tag: 'rollout-never:built'}",
                              "6: steps/0/image_build/context", "is not a directory"),
    "build-dockerfile-missing": ("  - image_build:\n      context: frontend\n      dockerfile: Dockerfile.nope\n"
                                 "      tag: 'rollout-never:built'", "8: steps/0/image_build/dockerfile", "not found"),
    "env-missing-host-data": ("  - compose_limits:\n      service: app\n      environment:\n"
                              "        API_TOKEN: '{{ host.data.api_token }}'",
                              "8: steps/0/compose_limits/environment", "the host has no data 'api_token'"),
    "probe-missing-host-data": ("  - recreate: {services: [app]}\nvalidate:\n"
                                "  - http:\n      status: 200\n      url: 'http://127.0.0.1:{{ host.data.nokey }}/'",
                                "10: validate/0/http/url", "the host has no data 'nokey'"),
    "probe-unknown-service": ("  - recreate: {services: [app]}\nvalidate:\n"
                              "  - stats:\n      fail: {memory_percent: 90}\n      service: ghost",
                              "10: validate/0/stats/service", NO_GHOST),
    "probe-redis-unknown-service": ("  - recreate: {services: [app]}\nvalidate:\n"
                                    "  - redis_info: {service: ghost, metric: loading, bound: {eq: 0}}",
                                    "8: validate/0/redis_info/service", NO_GHOST),
}
WORKERS = 4  # subprocesses at once (each bad input is refused before any host is touched)


def host_state(stack) -> dict:
    state = snapshot(stack)
    state["ids"] = {s: stack.container(s).id for s in SERVICES}
    state["started"] = {s: stack.container(s).attrs["State"]["StartedAt"] for s in SERVICES}
    state["backups"] = sorted(str(p) for p in stack.project_dir.rglob("*.backup"))
    state["temp_files"] = sorted(str(p) for p in stack.project_dir.rglob("*rollout-*"))
    state["state_dir"] = (stack.project_dir / ".rollout").exists()
    state["etc_hostname"] = sha256_file(Path("/etc/hostname"))
    return state


def bad_inventories(stack) -> dict[str, tuple[str | None, list[str]]]:
    """Inventories that point at the live stack but are wrong (text, fragments of the error)."""
    data = stack.host_data

    def inv(d: dict, group: str = "app_servers") -> str:
        return f"{group} = [('@local', {d!r})]\n"

    def without(key: str) -> dict:
        return {k: v for k, v in data.items() if k != key}

    return {
        "missing-file": (None, ["inventory file not found"]),
        "python-syntax-error": (inv(data)[:-3] + "\n", ["cannot load inventory", "SyntaxError"]),
        "missing-project_dir": (inv(without("project_dir")), ["host @local: missing host data project_dir"]),
        "missing-compose_file": (inv(without("compose_file")), ["host @local: missing host data compose_file"]),
        "missing-compose_project": (inv(without("compose_project")), ["host @local: missing host data compose_project"]),
        "relative-project_dir": (inv({**data, "project_dir": data["project_dir"].lstrip("/")}),
                                 ["host @local: project_dir must be an absolute path"]),
        "no-such-group": (inv(data, group="web"), ["no group 'app_servers'"]),
        "empty-inventory": ("", ["no group 'app_servers'"]),
        **{name: (text, fragments) for name, (text, fragments) in INVENTORY_BROKEN.items()},
    }


def test_every_bad_input_is_refused_by_apply_and_the_live_host_is_unchanged(demo_stack, tmp_path):
    stack = demo_stack
    inv = str(stack.inventory_path)
    # The host-level symlink case needs a link out of the project (to /etc), as in the corpus.
    (stack.project_dir / "frontend" / "etc").symlink_to("/etc")
    before = host_state(stack)
    started = time.monotonic()

    jobs = []  # (label, args, cwd, check)
    # Every bad plan's exact report is proved in-process by test_plan_errors; here every third
    # one (38, spread over all the kinds of error) also goes through `apply` against the host.
    for case in CASES[::3]:
        work = tmp_path / "plans" / case.id
        (work / "plans").mkdir(parents=True)
        (work / FILE).write_bytes(case.raw)

        def check(result, case=case):
            lines = result.stderr.splitlines()
            assert lines and lines[0].startswith("error: "), result.stderr[-2000:]
            got = [lines[0].removeprefix("error: "), *lines[1:]]
            assert matches(got, case.expect), "\n".join(["got:", *got, "expected:", *case.expect])
            # every issue names the file, and its line unless the whole file is refused (too big)
            assert all(g.startswith(f"{FILE}:") for g in got), got
            assert all(re.match(rf"{re.escape(FILE)}:\d+: ", g) for g in got) or "bytes; a plan is at most" in got[0]

        jobs.append((f"plan {case.id}", ["apply", FILE, "--yes", "-i", inv], work, check))

    for name, (step, fragments) in HOST_CASES.items():
        work = tmp_path / "host" / name
        plan = work / "plans" / f"{name.replace('-', '_')}.yaml"
        plan.parent.mkdir(parents=True)
        plan.write_text(HOST_PLAN.format(name=name.replace("-", "_"), step=step))
        rel = str(plan.relative_to(work))

        def check(result, fragments=fragments, rel=rel):
            for fragment in fragments:
                assert fragment in result.stderr, result.stderr
            # FILE:LINE: steps/0/KIND/KEY of the plan's step (the step starts at line 6)
            assert re.search(rf"{re.escape(rel)}:([6-9]|1\d): steps/0/\w+/\w+: ", result.stderr), result.stderr

        jobs.append((f"host {name}", ["apply", rel, "--yes", "-i", inv], work, check))

    for name, (body, where, fragment) in LIVE_HOST_CASES.items():
        work = tmp_path / "live" / name
        plan = work / "plans" / f"{name}.yaml"
        plan.parent.mkdir(parents=True)
        plan.write_text(f"plan: live\nversion: 1\ntitle: host-level bad input\nhosts: app_servers\nsteps:\n{body}\n")
        rel = str(plan.relative_to(work))

        def check(result, where=where, fragment=fragment, rel=rel):
            assert result.stderr.startswith(f"error: {rel}:{where}: "), result.stderr
            assert fragment in result.stderr, result.stderr

        jobs.append((f"live {name}", ["apply", rel, "--yes", "-i", inv], work, check))

    for name, (text, fragments) in bad_inventories(stack).items():
        path = tmp_path / "inventories" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        if text is not None:
            path.write_text(text)

        def check(result, fragments=fragments, path=path):
            assert str(path) in result.stderr, result.stderr  # names the file
            for fragment in fragments:
                assert fragment in result.stderr, result.stderr

        # day1 itself: with a good inventory this very command would change the stack.
        jobs.append((f"inventory {name}", ["apply", "day1", "--yes", "-i", str(path)], REPO, check))

    def run(job):
        label, args, cwd, check = job
        result = rollout(*args, cwd=cwd, env={"NO_COLOR": "1", "COLUMNS": "200"}, timeout=60)
        try:
            assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout[-1000:]}{result.stderr[-2000:]}"
            assert "Traceback" not in result.stderr, result.stderr[-2000:]
            assert not re.search(r": run \d{8}T", result.stdout)  # no run was started
            check(result)
        except AssertionError as exc:
            return f"{label}: {exc}"
        return None

    with ThreadPoolExecutor(WORKERS) as pool:
        failures = [f for f in pool.map(run, jobs) if f]
    elapsed = time.monotonic() - started

    after = host_state(stack)
    assert failures == [], f"{len(failures)} of {len(jobs)} bad inputs misreported:\n" + "\n\n".join(failures)
    assert differences(before, after) == {}
    assert not (stack.project_dir / ".rollout" / "runs").exists()
    hosts = len(HOST_CASES) + len(LIVE_HOST_CASES)
    print(f"\nbad inputs tried against the live stack: {len(jobs)} ({len(CASES)} plans, {hosts} host-level, "
          f"{len(jobs) - len(CASES) - hosts} inventories), all exit 2, host unchanged; {elapsed:.1f}s")
    assert len(jobs) >= 50
