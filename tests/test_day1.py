"""Day 1 end to end against the real engine: diff, apply, soak, automatic and emergency rollback."""
from __future__ import annotations

import json
from pathlib import Path

import requests

from helpers import REPO, journal_records, rollout, rollout_bg, sha256_file, tree_digest

GIB, MIB = 1024**3, 1024**2
DAY1 = (REPO / "plans" / "day1.yaml").read_text()
FAST = ["--soak", "3s", "--soak-every", "1s"]


def limits(container) -> tuple[int, int, int]:
    container.reload()
    hc = container.attrs["HostConfig"]
    return hc["Memory"], hc["NanoCpus"], hc["MemoryReservation"]


def env_of(container) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of plans/day1.yaml with one change, as a test plan file."""
    assert old in DAY1, old
    path = tmp_path / f"{name}.yaml"
    path.write_text(DAY1.replace(old, new))
    return path


def test_apply_day1_changes_only_app_and_rolls_back_on_request(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    others = {s: demo_stack.container(s).id for s in ("frontend", "redis")}
    app_before = demo_stack.container("app").id
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)

    saved = tmp_path / "day1.plan.json"
    diff = rollout("diff", "day1", "-i", inv, "-o", str(saved))
    assert diff.returncode == 0, diff.stderr
    assert "-          memory: 2G" in diff.stdout and "+          memory: 1G" in diff.stdout
    assert "memory 2.00 GiB → 1.00 GiB; nano_cpus 1 CPUs → 0.75 CPUs; memory_reservation 1.00 GiB → 512 MiB" in diff.stdout
    assert "SESSION_SECRET" not in diff.stdout or "demo-not-a-real-secret" not in diff.stdout

    result = rollout("apply", str(saved), "--yes", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "soak summary app" in result.stdout

    # Only the targeted lines of the compose file changed.
    import difflib
    changed = [ln for ln in difflib.unified_diff(original.decode().splitlines(), demo_stack.compose_path.read_text().splitlines(),
                                                  lineterm="", n=0) if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert sorted(changed) == sorted([
        '-      NODE_OPTIONS: "--max-old-space-size=1024"',
        '+      NODE_OPTIONS: "--max-old-space-size=384 --optimize-for-size"',
        "-          memory: 2G", "+          memory: 1G",
        "-          cpus: '1.0'", "+          cpus: '0.75'",
        "-          memory: 1G", "+          memory: 512M",
    ])
    assert (demo_stack.project_dir / "docker-compose.production.yml.backup").read_bytes() == original

    app = demo_stack.container("app")
    assert app.id != app_before
    assert limits(app) == (GIB, 750_000_000, 512 * MIB)
    assert env_of(app)["NODE_OPTIONS"] == "--max-old-space-size=384 --optimize-for-size"
    assert {s: demo_stack.container(s).id for s in ("frontend", "redis")} == others

    status = rollout("status", "-i", inv)
    assert "day1 v1" in status.stdout and "APPLIED" in status.stdout

    # Emergency rollback of a finished run restores everything; a second one is a no-op.
    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)
    assert {s: demo_stack.container(s).id for s in ("frontend", "redis")} == others
    app_after_rollback = demo_stack.container("app").id
    again = rollout("rollback", "day1", "-i", inv, "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    assert demo_stack.container("app").id == app_after_rollback
    assert not (demo_stack.project_dir / ".rollout" / "lock").exists()
    history = rollout("history", "-i", inv)
    assert "succeeded" not in history.stdout and "rolled_back" in history.stdout


def test_heap_budget_too_small_fails_health_and_rolls_back(demo_stack, tmp_path):
    plan = variant(tmp_path, "tiny-heap", "--max-old-space-size=384", "--max-old-space-size=64")
    original = demo_stack.compose_path.read_bytes()
    result = rollout("apply", str(plan), "-i", str(demo_stack.inventory_path), "--yes", *FAST)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled back and verified" in result.stdout + result.stderr
    assert "heap" in (result.stdout + result.stderr).lower()
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)
    assert requests.get(demo_stack.url("/api/health"), timeout=5).status_code == 200


def test_memory_breach_during_soak_rolls_back(demo_stack, tmp_path):
    # The app holds a 480 MB working set under a 512M limit: 94 % > the 90 % fail threshold.
    plan = variant(tmp_path, "breach", "limits: {memory: 1G,", "limits: {memory: 512M,")
    plan.write_text(plan.read_text()
                    .replace("reservations: {memory: 512M,", "reservations: {memory: 256M,")
                    .replace('NODE_OPTIONS: "--max-old-space-size=384 --optimize-for-size"',
                             'NODE_OPTIONS: "--max-old-space-size=1024"\n        APP_WORKING_SET_MB: "480"'))
    original = demo_stack.compose_path.read_bytes()
    result = rollout("apply", str(plan), "-i", str(demo_stack.inventory_path), "--yes", "--soak", "8s", "--soak-every", "1s")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "breached memory_percent ≥ 90 for 3 consecutive samples" in out
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)
    runs = journal_records(demo_stack.project_dir)
    assert [r["outcome"] for r in runs[-1] if r["t"] == "end"] == ["rolled_back"]


def test_flaky_probe_does_not_roll_back(demo_stack, tmp_path):
    # No recreate: the validate probe talks to the running container, told to fail its next health check once.
    plan = tmp_path / "flaky.yaml"
    plan.write_text(
        "plan: flaky\nversion: 1\ntitle: flaky probe\nhosts: app_servers\n"
        "steps:\n  - compose_limits: {service: app, environment: {FEATURE_FLAG: 'on'}}\n"
        "validate:\n  - http:\n      url: 'http://127.0.0.1:{{ host.data.app_port }}/api/health'\n"
        "      status: 200\n      retry: {consecutive: 3, interval: 500ms}\n"
    )
    assert requests.post(demo_stack.url("/api/debug/fail-health?count=1"), timeout=5).status_code == 200
    result = rollout("apply", str(plan), "-i", str(demo_stack.inventory_path), "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    probes = [r for r in journal_records(demo_stack.project_dir)[-1] if r["t"] == "probe"]
    assert probes[0]["result"]["attempts"] == 2 and probes[0]["result"]["verdict"] == "pass"
    assert "FEATURE_FLAG: 'on'" in demo_stack.compose_path.read_text()


def test_sigkill_after_recreate_then_emergency_rollback(demo_stack):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    # Killed right after the recreate step is journaled done, before any validation.
    killed = rollout("apply", "day1", "-i", inv, "--yes", *FAST, env={"ROLLOUT_FAULT": "apply:done:1"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert limits(demo_stack.container("app"))[0] == GIB
    assert (demo_stack.project_dir / ".rollout" / "lock").exists()  # the dead run's lock is left behind

    # A new apply refuses: the lock is stale (exit 4) — and says so.
    blocked = rollout("apply", "day1", "-i", inv, "--yes", *FAST)
    assert blocked.returncode == 4 and "STALE" in blocked.stderr

    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)
    assert not (demo_stack.project_dir / ".rollout" / "lock").exists()
    again = rollout("rollback", "day1", "-i", inv, "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_sigkill_after_compose_write_before_recreate(demo_stack):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    app_id = demo_stack.container("app").id
    killed = rollout("apply", "day1", "-i", inv, "--yes", *FAST, env={"ROLLOUT_FAULT": "apply:done:0"})
    assert killed.returncode == -9
    assert demo_stack.compose_path.read_bytes() != original
    # A later apply over the unfinished run is refused until it is rolled back.
    (demo_stack.project_dir / ".rollout" / "lock").unlink()
    refused = rollout("apply", "day1", "-i", inv, "--yes", *FAST)
    assert refused.returncode == 2 and "rollout rollback day1" in refused.stderr
    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert demo_stack.container("app").id == app_id  # never recreated: nothing to recreate back


def test_two_concurrent_applies_one_runs_other_exits_4(demo_stack):
    inv = str(demo_stack.inventory_path)
    procs = [rollout_bg("apply", "day1", "-i", inv, "--yes", *FAST) for _ in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 4], outs
    loser = outs[[p.returncode for p in procs].index(4)]
    assert "another run holds the lock: held by" in loser and "since" in loser
    assert len(journal_records(demo_stack.project_dir)) == 1  # the loser journaled nothing


def test_diff_changes_nothing_and_a_saved_diff_is_refused_after_a_hand_edit(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    files = tree_digest(demo_stack.project_dir)
    ids = {s: demo_stack.container(s).id for s in ("app", "frontend", "redis")}
    out = rollout("diff", "day1", "-i", inv, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    kinds = [c["kind"] for c in doc["hosts"]["@local"]["changes"]]
    assert kinds[:4] == ["file", "engine", "ignored", "service"] and "watch" in kinds
    assert "demo-not-a-real-secret" not in out.stdout
    saved = tmp_path / "day1.plan.json"
    assert rollout("diff", "day1", "-i", inv, "-o", str(saved)).returncode == 0
    assert rollout("apply", "day1", "-i", inv, "--dry-run").returncode == 0
    assert tree_digest(demo_stack.project_dir) == files
    assert {s: demo_stack.container(s).id for s in ids} == ids

    edited = demo_stack.compose_path.read_text().replace("memory: 2G", "memory: 3G", 1)
    demo_stack.compose_path.write_text(edited)
    refused = rollout("apply", str(saved), "--yes")
    assert refused.returncode == 2
    assert "moved on since the plan was saved" in refused.stderr and "limits" in refused.stderr
    assert demo_stack.compose_path.read_text() == edited
    assert demo_stack.container("app").id == ids["app"]


def test_apply_without_terminal_or_yes_refuses(demo_stack):
    before = sha256_file(demo_stack.compose_path)
    result = rollout("apply", "day1", "-i", str(demo_stack.inventory_path))
    assert result.returncode == 2 and "pass --yes" in result.stderr
    assert sha256_file(demo_stack.compose_path) == before
    assert not (demo_stack.project_dir / ".rollout" / "runs").exists()


def test_rollback_failing_halfway_is_an_emergency_then_finishes(demo_stack):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    rollout("apply", "day1", "-i", inv, "--yes", *FAST, env={"ROLLOUT_FAULT": "apply:done:1"})
    backups = list((demo_stack.project_dir / ".rollout" / "runs").glob("*/backups/*"))
    assert len(backups) == 1
    hidden = backups[0].with_name("hidden")
    backups[0].rename(hidden)  # an operator "cleaned up" both backups
    operator_copy = demo_stack.project_dir / "docker-compose.production.yml.backup"
    operator_copy.unlink()
    broken = rollout("rollback", "day1", "-i", inv, "--yes")
    assert broken.returncode == 3, broken.stdout + broken.stderr
    assert "EMERGENCY" in broken.stderr and "limits (compose_limits)" in broken.stderr
    assert "recreate-app (recreate)" in broken.stderr and "cp " in broken.stderr
    hidden.rename(backups[0])
    fixed = rollout("rollback", "day1", "-i", inv, "--yes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)


def test_rollback_refuses_to_clobber_a_later_change(demo_stack):
    inv = str(demo_stack.inventory_path)
    assert rollout("apply", "day1", "-i", inv, "--yes", *FAST).returncode == 0
    edited = demo_stack.compose_path.read_text().replace("NODE_ENV: production", "NODE_ENV: production  # hotfix")
    demo_stack.compose_path.write_text(edited)  # an operator's hand edit after the run
    app_id = demo_stack.container("app").id
    refused = rollout("rollback", "day1", "-i", inv, "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "changed after this run wrote it" in refused.stderr and "nothing changed" in refused.stderr
    assert demo_stack.compose_path.read_text() == edited
    assert demo_stack.container("app").id == app_id
    assert not (demo_stack.project_dir / ".rollout" / "lock").exists()
