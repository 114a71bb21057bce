"""The bundled MediaNest demo stack, against the real Docker engine.

One module-scoped stack serves the read-mostly checks; tests that stop or
recreate containers run last or use their own `demo_stack`.
"""
from __future__ import annotations

import concurrent.futures
import io
import shutil
import subprocess
import uuid

import docker.errors
import pytest
import requests
import tenacity
from ruamel.yaml import YAML

from orchestrator import demo
from helpers import skip_or_fail
from stack import COMPOSE_FILE, EXAMPLE, DemoStack

MiB = 1024 * 1024
BUDGET_BYTES = 50 * 1000 * 1000  # the day2 plan's 50MB bundle budget


@pytest.fixture(scope="module")
def stack(docker_client, tmp_path_factory):
    s = DemoStack(tmp_path_factory.mktemp("demo"))
    try:
        s.up()
        yield s
    finally:
        s.down()


def memory_usage(container) -> tuple[int, int]:
    """(raw cgroup usage, usage as `docker stats` shows it: minus inactive file cache)."""
    mem = container.stats(stream=False, one_shot=True)["memory_stats"]
    usage = mem["usage"]
    return usage, usage - mem.get("stats", {}).get("total_inactive_file", 0)


def static_bytes(client, image: str) -> tuple[int, int]:
    """(apparent bytes, `du -sk` KiB) of /app/.next/static, measured in a throwaway container."""
    out = client.containers.run(
        image,
        ["sh", "-c", "find /app/.next/static -type f -exec stat -c %s {} + | awk '{s+=$1} END {print s}'; "
                     "du -sk /app/.next/static | cut -f1"],
        remove=True,
    ).decode().split()
    return int(out[0]), int(out[1])


def retry(seconds: float = 30):
    return tenacity.Retrying(stop=tenacity.stop_after_delay(seconds), wait=tenacity.wait_fixed(0.25), reraise=True)


# ----------------------------------------------------------------------------- files (no engine)


def test_compose_file_round_trips_byte_for_byte():
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    text = (EXAMPLE / COMPOSE_FILE).read_text()
    data = yaml.load(text)
    out = io.StringIO()
    yaml.dump(data, out)
    assert out.getvalue() == text
    # what the rollout tool relies on: a comment and a long line inside app's section
    app = text[text.index("\n  app:\n"):text.index("\n  frontend:\n")]
    assert any(line.strip().startswith("#") for line in app.splitlines())
    assert max(len(line) for line in app.splitlines()) > 100
    assert data["services"]["app"]["environment"]["NODE_OPTIONS"] == "--max-old-space-size=1024"
    assert "container_name" not in text


def test_missing_host_binaries_name_the_apt_packages(monkeypatch):
    monkeypatch.setitem(demo.BINARY_CANDIDATES, "redis-server", ("/nonexistent/redis-server",))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(demo.DemoError, match="apt-get install -y busybox-static redis-server redis-tools"):
        demo.runtime_files()


def test_host_data_maps_to_compose_project_and_env():
    data = {"project_dir": "/srv/medianest", "compose_file": COMPOSE_FILE, "compose_project": "medianest",
            "app_port": 18080, "frontend_port": 18081, "redis_port": 16379, "frontend_image": "medianest/frontend:latest"}
    project = demo.project_for(data)
    assert (project.project_dir, project.compose_file, project.project_name) == ("/srv/medianest", COMPOSE_FILE, "medianest")
    assert demo.compose_env(data) == {"MEDIANEST_APP_PORT": "18080", "MEDIANEST_FRONTEND_PORT": "18081",
                                      "MEDIANEST_REDIS_PORT": "16379", "MEDIANEST_FRONTEND_IMAGE": "medianest/frontend:latest"}


def test_frontend_configs_drive_the_static_size(tmp_path):
    """build-static.sh reads markers from the config: current ~80 MiB, optimized ~20 MiB, oversize > 50MB."""
    busybox = demo._find_binary("busybox")
    if busybox is None:
        skip_or_fail("busybox not installed (scripts/setup.sh installs busybox-static)")
    sizes = {}
    for name in ("next.config.js", "next.config.optimized.js", "next.config.oversize.js"):
        out = tmp_path / name
        subprocess.run([str(busybox), "sh", str(EXAMPLE / "frontend" / "build-static.sh"),
                        str(EXAMPLE / "frontend" / name), str(out)], check=True, capture_output=True)
        sizes[name] = sum(f.stat().st_size for f in (out / "static").rglob("*") if f.is_file())
        shutil.rmtree(out)
    assert 78 * MiB < sizes["next.config.js"] < 82 * MiB
    assert 18 * MiB < sizes["next.config.optimized.js"] < 22 * MiB
    assert BUDGET_BYTES < sizes["next.config.oversize.js"] < 60 * MiB


# ----------------------------------------------------------------------------- images


def test_images_are_built_from_scratch_without_pull(stack, docker_client):
    runtime = docker_client.images.get(demo.RUNTIME_IMAGE)
    assert runtime.attrs["RepoDigests"] == []  # never came from a registry
    assert len(runtime.attrs["RootFS"]["Layers"]) == 2  # COPY rootfs/ + busybox --install
    history = docker_client.api.history(demo.RUNTIME_IMAGE)
    assert all(h["Id"] != "<missing>" for h in history), "a layer we did not build (pulled base image)"
    assert "COPY dir:" in history[-1]["CreatedBy"]  # the very first layer is our rootfs copy
    assert not any("ADD file:" in h["CreatedBy"] for h in history)
    for image in (demo.APP_IMAGE, stack.frontend_image):
        assert docker_client.images.get(image).attrs["RepoDigests"] == []
        assert all(h["Id"] != "<missing>" for h in docker_client.api.history(image))

    # a second build changes nothing: no image is built again (how fast: bench/, not here)
    before = {t: docker_client.images.get(t).id for t in (demo.RUNTIME_IMAGE, demo.APP_IMAGE, stack.frontend_image)}
    logs: list[str] = []
    demo.build_images(stack.project_dir, stack.frontend_image, log=logs.append)
    assert [line for line in logs if line.startswith("built ")] == []
    assert {t: docker_client.images.get(t).id for t in before} == before


# ----------------------------------------------------------------------------- running stack


def test_stack_answers_on_loopback_only(stack):
    resp = requests.get(stack.url("/api/health"), timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    body = resp.json()
    assert body["status"] == "ok" and body["heap_budget_mb"] == 1024 and body["working_set_mb"] == 96
    assert "Cache-Control" not in resp.headers  # CACHE_MIDDLEWARE=off

    front = requests.get(stack.url("/", "frontend"), timeout=5)
    assert front.status_code == 200 and "MediaNest" in front.text
    asset = requests.head(stack.url("/_next/static/chunks/main-8c2a1f7e9b0d3c46.js", "frontend"), timeout=5)
    assert asset.status_code == 200

    for service in ("app", "frontend", "redis"):
        ports = stack.container(service).attrs["NetworkSettings"]["Ports"]
        assert {b["HostIp"] for bindings in ports.values() if bindings for b in bindings} == {"127.0.0.1"}

    notfound = requests.get(stack.url("/api/nope"), timeout=5)
    assert notfound.status_code == 404 and notfound.json()["error"] == "not found"


def test_compose_compatibility_applies_deploy_resources(stack):
    host_config = stack.container("app").attrs["HostConfig"]
    assert host_config["Memory"] == 2 * 1024 * MiB
    assert host_config["NanoCpus"] == 1_000_000_000
    assert host_config["MemoryReservation"] == 1024 * MiB
    assert host_config["Init"] is True


def test_redis_runs_with_command_line_config(stack):
    assert stack.redis_config_get("maxmemory-policy") == "noeviction"
    assert stack.redis_config_get("save") == ""
    assert stack.redis_config_get("appendonly") == "no"
    assert stack.redis_config_get("protected-mode") == "no"


def test_held_memory_is_charged_to_the_container(stack):
    app = stack.container("app")
    base_raw, base_seen = memory_usage(app)
    assert base_seen >= 90 * MiB  # the 96 MB working set on the /ballast tmpfs
    try:
        resp = requests.post(stack.url("/api/debug/hold?mb=200"), timeout=30)
        assert resp.status_code == 200 and resp.json()["held_mb"] == 200
        raw, seen = memory_usage(app)
        assert raw - base_raw >= 150 * MiB
        assert seen - base_seen >= 150 * MiB  # what `docker stats` shows
        assert requests.get(stack.url("/api/health"), timeout=5).json()["held_mb"] == 200
    finally:
        released = requests.post(stack.url("/api/debug/hold?mb=0"), timeout=30)
    assert released.json()["held_mb"] == 0
    assert memory_usage(app)[1] < base_seen + 50 * MiB


def test_media_is_cache_aside_through_redis(stack):
    media_id = f"m{uuid.uuid4().hex[:10]}"
    before = stack.redis_info()
    first = requests.get(stack.url(f"/api/media/{media_id}"), timeout=5)
    second = requests.get(stack.url(f"/api/media/{media_id}"), timeout=5)
    after = stack.redis_info()
    assert first.status_code == second.status_code == 200
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.json() == second.json() and first.json()["id"] == media_id
    assert int(after["keyspace_misses"]) - int(before["keyspace_misses"]) == 1
    assert int(after["keyspace_hits"]) - int(before["keyspace_hits"]) == 1
    assert requests.get(stack.url("/api/media/bad$id"), timeout=5).status_code == 400


def listen_overflows(container) -> int:
    """TcpExt ListenOverflows of the container's network namespace (SYNs dropped on a full accept queue)."""
    lines = [line.split() for line in container.exec_run(["cat", "/proc/net/netstat"]).output.decode().splitlines()]
    header, values = next((h, v) for h, v in zip(lines, lines[1:]) if h[0] == "TcpExt:" and v[0] == "TcpExt:")
    return int(values[header.index("ListenOverflows")])


def test_parallel_requests_and_stats(stack):
    app = stack.container("app")
    overflows_before = listen_overflows(app)
    stats_before = requests.get(stack.url("/api/performance/stats"), timeout=5).json()

    def one(i: int) -> int:
        path = "/api/health" if i % 2 else f"/api/media/par{i % 5}"
        return requests.get(stack.url(path), timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(one, range(60)))
    assert set(codes) == {200}
    # no SYN dropped on a full accept queue (each costs the client a 1 s retransmit)
    assert listen_overflows(app) == overflows_before
    stats = requests.get(stack.url("/api/performance/stats"), timeout=5).json()
    assert stats["requests"] >= stats_before["requests"] + 61
    assert stats["p95_ms"] > 0 and stats["p95_ms"] >= stats["p50_ms"]


def test_fail_health_injection(stack):
    assert requests.post(stack.url("/api/debug/fail-health?count=2"), timeout=5).json() == {"fail_health": 2}
    codes = [requests.get(stack.url("/api/health"), timeout=5).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    requests.post(stack.url("/api/debug/fail-health?count=-1"), timeout=5)
    assert [requests.get(stack.url("/api/health"), timeout=5).status_code for _ in range(3)] == [503] * 3
    requests.post(stack.url("/api/debug/fail-health?count=0"), timeout=5)
    assert requests.get(stack.url("/api/health"), timeout=5).status_code == 200
    assert requests.get(stack.url("/api/debug/fail-health?count=1"), timeout=5).status_code == 405


def test_second_up_changes_nothing(stack):
    before = {s: stack.container(s).id for s in ("app", "frontend", "redis")}
    stack.up()
    assert {s: stack.container(s).id for s in before} == before


def test_frontend_bundle_size_follows_next_config(stack, docker_client):
    current_bytes, current_kib = static_bytes(docker_client, stack.frontend_image)
    assert current_bytes > BUDGET_BYTES and current_kib * 1024 > BUDGET_BYTES

    frontend = stack.project_dir / "frontend"
    shutil.copyfile(frontend / "next.config.optimized.js", frontend / "next.config.js")
    tag = f"{stack.frontend_image}-optimized"
    try:
        demo.build_frontend_image(docker_client, stack.project_dir, tag, dockerfile="Dockerfile.optimized",
                                  log=lambda _: None)
        optimized_bytes, optimized_kib = static_bytes(docker_client, tag)
    finally:
        try:
            docker_client.images.remove(tag, noprune=True)
        except docker.errors.APIError:
            pass
    assert optimized_bytes < BUDGET_BYTES and optimized_kib * 1024 < BUDGET_BYTES
    assert 70 * MiB < current_bytes < 90 * MiB and 15 * MiB < optimized_bytes < 25 * MiB


def test_working_set_over_heap_budget_is_unhealthy(stack):
    """Recreate app from an edited compose file (like day1 does): budget 64 MB < 96 MB working set."""
    old_id = stack.container("app").id
    text = stack.compose_path.read_text()
    patched = text.replace('"--max-old-space-size=1024"', '"--max-old-space-size=64"')
    patched = patched.replace('CACHE_MIDDLEWARE: "off"', 'CACHE_MIDDLEWARE: "on"')
    assert patched.count("=64") == 1 and 'CACHE_MIDDLEWARE: "on"' in patched
    stack.compose_path.write_text(patched)
    stack.compose("up", "-d", "--no-deps", "app")
    assert stack.container("app").id != old_id

    def unhealthy() -> requests.Response:
        resp = requests.get(stack.url("/api/health"), timeout=3)
        assert resp.status_code == 503
        return resp

    resp = retry()(unhealthy)
    body = resp.json()
    assert body["status"] == "unhealthy" and "96" in body["reason"] and "64" in body["reason"]
    assert resp.headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    static = requests.get(stack.url("/static/app.js"), timeout=3)
    assert static.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_status_then_prompt_stop(demo_stack):
    """On a stack of its own (conftest's demo_stack): status rows, then `docker stop` app."""
    rows = demo.status(demo_stack.project)
    assert [r["service"] for r in rows] == ["app", "frontend", "redis"]
    assert all(r["state"] == "running" for r in rows)
    assert rows[0]["ports"] == {"3000/tcp": [f"127.0.0.1:{demo_stack.app_port}"]}

    app = demo_stack.container("app")
    app.stop(timeout=30)
    app.reload()
    assert app.attrs["State"]["ExitCode"] != 137  # exited on SIGTERM, not killed after the grace period
