"""Issue 9.2 and 9.3 on the real demo stack: re-applying an applied plan changes nothing,
rollback restores the state from before the plan's oldest still-applied run, and `status`
reads the host (in effect / not applied / drifted / unfinished), naming what differs and
what the engine ignores."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import REPO, journal_records, rollout
from stack import DemoStack

GIB, MIB = 1024**3, 1024**2
FAST = ["--soak", "2s", "--soak-every", "1s"]
DAY1 = (REPO / "plans" / "day1.yaml").read_text()


def limits(container) -> tuple[int, int, int]:
    container.reload()
    hc = container.attrs["HostConfig"]
    return hc["Memory"], hc["NanoCpus"], hc["MemoryReservation"]


def status_of(inv: str, plan: str = "day1") -> dict:
    result = rollout("status", "-i", inv, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [row for row in json.loads(result.stdout) if row["plan"] == plan]
    assert len(rows) == 1, result.stdout
    return rows[0]


def status_text(inv: str) -> str:
    result = rollout("status", "-i", inv)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_reapply_changes_nothing_then_rollback_restores_before_the_plan(demo_stack):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    first = rollout("apply", "day1", "-i", inv, "--yes", *FAST)
    assert first.returncode == 0, first.stdout + first.stderr
    app_id = demo_stack.container("app").id
    assert limits(demo_stack.container("app")) == (GIB, 750_000_000, 512 * MIB)
    applied_file = demo_stack.compose_path.read_bytes()

    diff = rollout("diff", "day1", "-i", inv)
    assert diff.returncode == 0, diff.stderr
    assert "0 change(s)" in diff.stdout and "nothing to change" in diff.stdout and "recreate" not in diff.stdout

    # Without --yes and without a terminal: there is nothing to confirm.
    again = rollout("apply", "day1", "-i", inv, *FAST)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already in effect" in again.stdout and "nothing changed" in again.stdout
    assert demo_stack.container("app").id == app_id  # not recreated
    assert demo_stack.compose_path.read_bytes() == applied_file
    second = journal_records(demo_stack.project_dir)[-1]
    assert [r for r in second if r["t"] in ("undo", "step", "probe")] == []
    assert [r["outcome"] for r in second if r["t"] == "end"] == ["in_effect"]
    assert "in_effect" in rollout("history", "-i", inv).stdout

    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)
    assert status_of(inv)["state"] == "not_applied"
    assert "day1 v1" in (text := status_text(inv)) and "NOT APPLIED" in text and "rolled back" in text


def test_rollback_undoes_every_still_applied_run_of_the_plan_newest_first(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    assert rollout("apply", "day1", "-i", inv, "--yes", *FAST).returncode == 0
    # The same plan, edited since (v2): a second run on top of the first, both still applied.
    v2 = tmp_path / "day1.yaml"
    v2.write_text(DAY1.replace("version: 1", "version: 2").replace("limits: {memory: 1G,", "limits: {memory: 768M,"))
    result = rollout("apply", str(v2), "-i", inv, "--yes", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert limits(demo_stack.container("app"))[0] == 768 * MIB
    first, second = [p.name for p in sorted((demo_stack.project_dir / ".rollout" / "runs").iterdir())]

    back = rollout("rollback", "day1", "-i", inv, "--yes")
    out = back.stdout + back.stderr
    assert back.returncode == 0, out
    assert out.index(f"run {second}") < out.index(f"run {first}")  # both listed, newest first
    assert "2 runs of day1 undone" in out
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)
    runs = journal_records(demo_stack.project_dir)
    assert [[r["outcome"] for r in run if r["t"] == "end"][-1] for run in runs] == ["rolled_back", "rolled_back"]
    assert status_of(inv)["state"] == "not_applied"
    again = rollout("rollback", "day1", "-i", inv, "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def test_rollback_refuses_to_clobber_a_later_plan_and_names_it(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    original = demo_stack.compose_path.read_bytes()
    assert rollout("apply", "day1", "-i", inv, "--yes", *FAST).returncode == 0
    later = tmp_path / "flags.yaml"
    later.write_text("plan: flags\nversion: 1\ntitle: a later change of the same file\nhosts: app_servers\n"
                     "steps:\n  - compose_limits: {service: app, environment: {FEATURE_FLAG: 'on'}}\n")
    assert rollout("apply", str(later), "-i", inv, "--yes").returncode == 0
    flags_run = sorted((demo_stack.project_dir / ".rollout" / "runs").glob("*-flags-*"))[0].name
    day1_run = sorted((demo_stack.project_dir / ".rollout" / "runs").glob("*-day1-*"))[0].name
    patched, app_id = demo_stack.compose_path.read_bytes(), demo_stack.container("app").id

    refused = rollout("rollback", "day1", "-i", inv, "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "nothing changed" in refused.stderr and f"run {flags_run} of flags (roll back flags first)" in refused.stderr
    assert day1_run in refused.stderr and "rollout rollback --run ID" in refused.stderr
    assert demo_stack.compose_path.read_bytes() == patched and demo_stack.container("app").id == app_id

    assert rollout("rollback", str(later), "-i", inv, "--yes").returncode == 0
    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert limits(demo_stack.container("app")) == (2 * GIB, 10**9, GIB)


def test_status_in_effect_then_drift_in_the_container_then_repaired(demo_stack):
    inv = str(demo_stack.inventory_path)
    assert rollout("apply", "day1", "-i", inv, "--yes", *FAST).returncode == 0
    applied = demo_stack.compose_path.read_text()

    row = status_of(inv)
    assert row["state"] == "in_effect" and row["drift"] == [], row
    assert row["ignored"] == ["deploy.resources.reservations.cpus"]
    text = status_text(inv)
    assert "APPLIED — in effect" in text and "deploy.resources.reservations.cpus" in text

    # Drift on the container: the engine's limit changed behind compose's back.
    app = demo_stack.container("app").name
    subprocess.run(["docker", "update", "--memory", "1536m", "--memory-swap", "3g", app], check=True,
                   capture_output=True)
    row = status_of(inv)
    assert row["state"] == "drifted", row
    assert {"what": "app memory limit", "live": "1.5G", "planned": "1G", "before": "2G",
            "planned_by": "the compose file"} in row["drift"]
    assert "app memory limit is 1.5G; the compose file says 1G; before was 2G" in status_text(inv)
    # `apply` repairs it: the recreate (only) runs again.
    repair = rollout("apply", "day1", "-i", inv, "--yes", *FAST)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert limits(demo_stack.container("app"))[0] == GIB and status_of(inv)["state"] == "in_effect"


def test_status_drift_by_a_hand_edit_then_not_applied_then_unfinished(demo_stack):
    inv = str(demo_stack.inventory_path)
    assert rollout("apply", "day1", "-i", inv, "--yes", *FAST).returncode == 0
    applied = demo_stack.compose_path.read_text()

    # Drift in the file: a hand edit of the planned key.
    assert applied.count("memory: 1G\n") == 1
    demo_stack.compose_path.write_text(applied.replace("memory: 1G\n", "memory: 1536M\n"))
    row = status_of(inv)
    assert row["state"] == "drifted", row
    assert "app memory limit is 1536M; plan says 1G; before was 2G" in status_text(inv)
    demo_stack.compose_path.write_text(applied)
    assert status_of(inv)["state"] == "in_effect"

    back = rollout("rollback", "day1", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    row = status_of(inv)
    assert row["state"] == "not_applied" and row["still_applied"] == [], row

    killed = rollout("apply", "day1", "-i", inv, "--yes", *FAST, env={"ROLLOUT_FAULT": "apply:done:0"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    row = status_of(inv)
    assert row["state"] == "unfinished" and "rollout rollback day1" in row["detail"], row
    text = status_text(inv)
    assert "UNFINISHED" in text and "INTERRUPTED" in text
    back = rollout("rollback", "day1", "-i", inv, "--yes")  # takes over the dead run's stale lock
    assert back.returncode == 0, back.stdout + back.stderr
    assert status_of(inv)["state"] == "not_applied"


def test_diff_says_which_planned_keys_the_engine_ignores(docker_engine, tmp_path):
    """Checked against the compose tool's own warning on the patched file; no stack is started."""
    from orchestrator import composefile
    from orchestrator.compose import compose_argv, ignored_deploy_keys

    stack = DemoStack(tmp_path)
    inv = str(stack.inventory_path)
    result = rollout("diff", "day1", "-i", inv, "--json")
    assert result.returncode == 0, result.stderr
    notes = [c for c in json.loads(result.stdout)["hosts"]["@local"]["changes"] if c["kind"] == "ignored"]
    assert [(n["extra"]["key"], n["after"], n["mutates"]) for n in notes] == [
        ("deploy.resources.reservations.cpus", "0.5", False)]
    text = rollout("diff", "day1", "-i", inv).stdout
    assert "! [limits] app: deploy.resources.reservations.cpus 0.5 is written to the compose file but has no effect" in text

    # What docker-compose 1.29 itself says about the patched file: the same keys.
    patched = composefile.patch(stack.compose_path.read_text(), "test", "app", limits={"memory": "1G", "cpus": "0.75"},
                                reservations={"memory": "512M", "cpus": "0.5"})
    check = stack.project_dir / "patched.yml"
    check.write_text(patched)
    argv = compose_argv()
    # `config --hash` builds the project as `up` does (plain `config` does not translate deploy keys)
    proc = subprocess.run(argv + ["-p", stack.project_name, "-f", str(check), "config", "--hash=app"],
                          cwd=stack.project_dir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ours = {key.removeprefix("deploy.") for key, _, _ in ignored_deploy_keys({"memory": "1G", "cpus": "0.75"},
                                                                             {"memory": "512M", "cpus": "0.5"})}
    if argv[0] == "docker-compose":  # v1 names them; v2 drops them silently
        warned = [line.split("ignored: ", 1)[1] for line in proc.stderr.splitlines() if "have been ignored" in line]
        assert warned and {k.strip() for line in warned for k in line.split(",")} == ours, proc.stderr
    assert ours == {"resources.reservations.cpus"}
    # A plan without the key gets no note.
    plan = tmp_path / "no-cpu-reservation.yaml"
    plan.write_text(DAY1.replace('reservations: {memory: 512M, cpus: "0.5"}', "reservations: {memory: 512M}"))
    result = rollout("diff", str(plan), "-i", inv, "--json")
    assert result.returncode == 0, result.stderr
    assert not [c for c in json.loads(result.stdout)["hosts"]["@local"]["changes"] if c["kind"] == "ignored"]
    assert Path(stack.compose_path).read_text() != patched  # diff wrote nothing
