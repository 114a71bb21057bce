"""Where the demo stack lives: the tracked tree is source, never live state.

`rollout demo up` copies examples/medianest to $ROLLOUT_DEMO_DIR (else under
$XDG_STATE_HOME) and the default inventory points there, so the README's demo
leaves a checkout clean. `demo up` also heals containers that lost their ports.
Tests that run the default inventory set ROLLOUT_DEMO_DIR, ROLLOUT_DEMO_PROJECT
and the MEDIANEST_* ports, so a developer's running demo is never touched.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import requests

from helpers import REPO, rollout, sha256_file
from orchestrator import demo, demo_paths
from stack import COMPOSE_FILE, EXAMPLE, DemoStack, free_ports, remove_project

TRACKED = ("examples", "inventories", "plans", "schemas", "scripts")


def tracked_tree_digest() -> dict[str, str]:
    """sha256 of every file under the source directories, ignored or hidden ones included."""
    return {str(p.relative_to(REPO)): sha256_file(p)
            for top in TRACKED for p in sorted((REPO / top).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def git_status() -> str | None:
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *TRACKED],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The default demo inventory, moved to a directory, project, ports and frontend tag of this test."""
    app, frontend, redis = free_ports(3)
    project = f"rt{secrets.token_hex(4)}"
    return {"ROLLOUT_DEMO_DIR": str(tmp_path / "state" / "medianest"), "ROLLOUT_DEMO_PROJECT": project,
            "MEDIANEST_APP_PORT": str(app), "MEDIANEST_FRONTEND_PORT": str(frontend),
            "MEDIANEST_REDIS_PORT": str(redis), "MEDIANEST_FRONTEND_IMAGE": f"medianest-{project}/frontend:latest",
            "NO_COLOR": "1"}


def ok(result) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    return out


# ----------------------------------------------------------------------------- no engine


def test_demo_dir_is_outside_the_tree_and_the_inventory_uses_the_same_definition(tmp_path, monkeypatch):
    assert demo_paths.demo_dir({"ROLLOUT_DEMO_DIR": "/srv/x/medianest"}) == Path("/srv/x/medianest")
    assert demo_paths.demo_dir({"XDG_STATE_HOME": "/var/st"}) == Path("/var/st/rollout/demo/medianest")
    home = Path.home() / ".local" / "state" / "rollout" / "demo" / "medianest"
    assert demo_paths.demo_dir({"XDG_STATE_HOME": "relative/ignored"}) == home  # the XDG spec
    assert demo_paths.demo_dir({}) == home
    assert REPO not in demo_paths.demo_dir({}).parents

    for var in ("XDG_STATE_HOME", "ROLLOUT_DEMO_PROJECT", "MEDIANEST_APP_PORT", "MEDIANEST_FRONTEND_PORT",
                "MEDIANEST_REDIS_PORT", "MEDIANEST_FRONTEND_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ROLLOUT_DEMO_DIR", str(tmp_path / "live"))
    # pyinfra is loaded in a process of its own (its gevent does not mix with pytest-xdist's threads)
    load = ("import json, sys; from orchestrator.inventory import load_inventory; "
            "print(json.dumps(load_inventory(sys.argv[1]).host_data['@local']))")
    proc = subprocess.run([sys.executable, "-c", load, str(REPO / "inventories" / "demo.py")], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data == demo_paths.demo_host_data()
    assert {k: data[k] for k in ("project_dir", "compose_project", "app_port", "frontend_port", "redis_port")} == {
        "project_dir": str(tmp_path / "live"), "compose_project": "medianest",
        "app_port": 18080, "frontend_port": 18081, "redis_port": 16379}


def test_commands_before_demo_up_say_run_demo_up_first(tmp_path):
    env = demo_env(tmp_path)
    for args in (["diff", "day1"], ["apply", "day1", "--yes"], ["status"], ["rollback", "day1", "--yes"]):
        result = rollout(*args, env=env)
        assert result.returncode == 2, (args, result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
        assert f"the demo stack is not set up at {env['ROLLOUT_DEMO_DIR']}: run `rollout demo up` first" \
            in result.stderr, result.stderr
    assert not (tmp_path / "state").exists()


def test_materialize_copies_the_example_once_and_never_overwrites_live_state(tmp_path):
    source = tmp_path / "example"
    shutil.copytree(EXAMPLE, source)
    # live state someone left in a source tree is never copied
    (source / ".rollout").mkdir(exist_ok=True)
    (source / ".rollout" / "lock").write_text("{}")
    (source / ".build" / "runtime").mkdir(parents=True, exist_ok=True)
    (source / f"{COMPOSE_FILE}.backup").write_text("old")
    target = tmp_path / "state" / "rollout" / "demo" / "medianest"
    logs: list[str] = []

    assert demo.materialize(target, source, log=logs.append) is True
    copied = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert copied == {str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*") if p.is_file()} | {demo.SOURCE_MANIFEST}
    assert (target / COMPOSE_FILE).read_bytes() == (EXAMPLE / COMPOSE_FILE).read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["medianest"]  # no staging directory left
    assert demo.source_changes(target, source) == []

    # a plan patched the live copy; later the tracked example changes too
    live = (target / COMPOSE_FILE).read_text().replace("memory: 2G", "memory: 1G")
    (target / COMPOSE_FILE).write_text(live)
    (source / "frontend" / "next.config.js").write_text("// a newer example\n")
    logs.clear()
    assert demo.materialize(target, source, log=logs.append) is False
    assert (target / COMPOSE_FILE).read_text() == live
    assert (target / "frontend" / "next.config.js").read_bytes() == (EXAMPLE / "frontend" / "next.config.js").read_bytes()
    assert len(logs) == 1 and "frontend/next.config.js" in logs[0] and COMPOSE_FILE not in logs[0]
    assert "rollout demo down --purge && rollout demo up" in logs[0]

    # a directory that is not a demo stack is neither filled nor deleted
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(demo.DemoError, match="exists but holds no docker-compose.production.yml"):
        demo.materialize(other, source, log=logs.append)
    with pytest.raises(demo.DemoError, match="was not set up by `rollout demo up`"):
        demo.check_purgeable(other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


# ----------------------------------------------------------------------------- against the engine


def test_the_demo_path_leaves_the_tracked_tree_unchanged(docker_engine, tmp_path):
    """scripts/demo.sh's commands (short soak) on the default inventory, moved away from the default
    demo by env: the checkout is byte-identical afterwards and the change landed in the live copy."""
    env = demo_env(tmp_path)
    live = Path(env["ROLLOUT_DEMO_DIR"])
    before, status_before = tracked_tree_digest(), git_status()
    try:
        ok(rollout("validate", env=env))
        up = ok(rollout("demo", "up", env=env))
        assert f"demo stack set up at {live} (copied from {EXAMPLE})" in up
        assert f"demo stack up in {live}" in up
        assert (live / COMPOSE_FILE).read_bytes() == (EXAMPLE / COMPOSE_FILE).read_bytes()
        ok(rollout("diff", "day1", env=env))
        changes = json.loads(ok(rollout("diff", "day1", "--json", env=env)))["hosts"]["@local"]["changes"]
        assert [c["target"] for c in changes if c["kind"] == "file"] == [str(live / COMPOSE_FILE)]
        ok(rollout("apply", "day1", "--yes", "--soak", "2s", "--soak-every", "1s", env=env))
        ok(rollout("status", env=env))

        patched = (live / COMPOSE_FILE).read_text()
        assert "memory: 1G" in patched and "--max-old-space-size=384" in patched
        assert (live / f"{COMPOSE_FILE}.backup").read_bytes() == (EXAMPLE / COMPOSE_FILE).read_bytes()
        assert list((live / ".rollout" / "runs").glob("*/journal.jsonl"))
        app = docker.from_env().containers.list(filters={"label": [
            f"com.docker.compose.project={env['ROLLOUT_DEMO_PROJECT']}", "com.docker.compose.service=app"]})
        assert [c.attrs["HostConfig"]["Memory"] for c in app] == [1024**3]

        # the second `demo up` keeps the live copy: day1 stays in effect, nothing is healed
        again = ok(rollout("demo", "up", env=env))
        assert "set up at" not in again and "recreating it" not in again, again
        assert (live / COMPOSE_FILE).read_text() == patched
        app = docker.from_env().containers.list(filters={"label": [
            f"com.docker.compose.project={env['ROLLOUT_DEMO_PROJECT']}", "com.docker.compose.service=app"]})
        assert [c.attrs["HostConfig"]["Memory"] for c in app] == [1024**3]

        assert tracked_tree_digest() == before
        assert git_status() == status_before

        # down --purge: containers, the live copy and the frontend tags are gone; the tree is untouched
        ok(rollout("demo", "down", "--purge", env=env))
        assert not live.exists()
        client = docker.from_env()
        assert client.containers.list(all=True, filters={
            "label": f"com.docker.compose.project={env['ROLLOUT_DEMO_PROJECT']}"}) == []
        assert client.images.list(name=env["MEDIANEST_FRONTEND_IMAGE"].rsplit(":", 1)[0]) == []
        assert tracked_tree_digest() == before
    finally:
        remove_project(env["ROLLOUT_DEMO_PROJECT"], env["MEDIANEST_FRONTEND_IMAGE"].rsplit(":", 1)[0])


def test_demo_up_recreates_a_container_that_lost_its_published_ports(demo_stack):
    """The engine can drop a running container's port publishing (seen after it entered and left
    swarm mode); a network disconnect does the same. `compose up -d` calls such a container
    up-to-date; `demo up` recreates it."""
    frontend = demo_stack.container("frontend")
    others = {s: demo_stack.container(s).id for s in ("app", "redis")}
    for network in list(frontend.attrs["NetworkSettings"]["Networks"]):
        subprocess.run(["docker", "network", "disconnect", network, frontend.name], check=True,
                       capture_output=True, timeout=120)
    frontend.reload()
    assert frontend.status == "running"
    assert frontend.attrs["HostConfig"]["PortBindings"]["3000/tcp"]  # configured ...
    assert not frontend.attrs["NetworkSettings"]["Ports"]  # ... but not published
    with pytest.raises(requests.ConnectionError):
        requests.get(demo_stack.url("/", "frontend"), timeout=10)

    result = rollout("demo", "up", "-i", str(demo_stack.inventory_path), env={"NO_COLOR": "1"})
    out = ok(result)
    healed = demo_stack.container("frontend")
    assert healed.id != frontend.id
    assert healed.attrs["NetworkSettings"]["Ports"]["3000/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(demo_stack.frontend_port)}]
    assert requests.get(demo_stack.url("/", "frontend"), timeout=30).status_code == 200
    # only the broken one is healed (compose may still recreate others on its own, e.g. a moved image tag)
    assert [line for line in out.splitlines() if line.endswith("recreating it")] == [
        f"frontend: {frontend.name} lost its published port(s) 3000/tcp; recreating it"], out
    assert all(demo_stack.container(s).attrs["NetworkSettings"]["Ports"] for s in others)


def test_demo_up_that_fails_is_one_clear_error_not_a_traceback(docker_engine, tmp_path):
    stack = DemoStack(tmp_path)
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", stack.app_port))  # the app's host port is in use
        taken.listen()
        result = rollout("demo", "up", "-i", str(stack.inventory_path), env={"NO_COLOR": "1"})
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: "), result.stderr
        assert str(stack.app_port) in result.stderr and "in use" in result.stderr, result.stderr
    finally:
        taken.close()
        stack.down()
