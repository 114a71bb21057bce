"""clients.redis: both transports (docker exec + redis-cli, and redis-py over TCP) against a
real Redis, and a plan that uses Redis loads without importing redis-py or ssl."""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO
from orchestrator.clients.redis import RedisEndpoint, RedisReplyError, endpoint_of
from orchestrator.errors import HostError
from orchestrator.hosts import Connection
from orchestrator.inventory import load_inventory

LOADED_AFTER_PLAN = """
import sys
from orchestrator.planfile import load_plan
import orchestrator.clients.redis, orchestrator.steps.redis_config, orchestrator.probes.redis_info
load_plan(sys.argv[1])
print("LOADED", " ".join(sorted(m for m in {"redis", "ssl", "requests", "docker"} if m in sys.modules)))
"""


def test_loading_a_redis_plan_imports_neither_redis_py_nor_ssl():
    proc = subprocess.run([sys.executable, "-c", LOADED_AFTER_PLAN, str(REPO / "plans" / "day3.yaml")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LOADED", proc.stdout[-500:]


def _pair(target, port: int, password: str | None = None) -> tuple[RedisEndpoint, RedisEndpoint]:
    """The same server twice: through docker exec, and over its published port with redis-py."""
    body = {"password": password} if password else {}
    return (endpoint_of(target, {"service": "redis", **body}),
            endpoint_of(target, {"url": f"redis://127.0.0.1:{port}/0", **body}))


def test_both_transports_read_and_write_the_same_server(demo_stack):
    port = demo_stack.redis_port
    with Connection(load_inventory(demo_stack.inventory_path), ["@local"]) as (target,):
        via_exec, via_tcp = _pair(target, port)
        assert (via_exec.where, via_tcp.where) == ("redis service redis", f"redis redis://127.0.0.1:{port}/0")
        for key in ("maxmemory-policy", "save", "appendonly", "maxmemory", "requirepass", "no-such-key"):
            assert via_exec.config_get(key) == via_tcp.config_get(key), key
        assert via_exec.config_get("maxmemory-policy") == "noeviction" and via_tcp.config_get("save") == ""
        assert via_tcp.config_get("no-such-key") is None
        server = via_tcp.info("server")
        assert server["redis_version"] == via_exec.info("server")["redis_version"] and server["config_file"] == ""
        assert via_tcp.call("PING") == via_exec.call("PING") == "PONG"
        assert isinstance(via_tcp.call("DBSIZE"), int) and via_tcp.call("DBSIZE") == via_exec.call("DBSIZE")

        # A write through one is read back through the other.
        via_tcp.config_set("timeout", "17")
        assert via_exec.config_get("timeout") == "17" == demo_stack.redis_config_get("timeout")
        via_exec.config_set("notify-keyspace-events", "KEA")
        assert via_tcp.config_get("notify-keyspace-events") == via_exec.config_get("notify-keyspace-events")
        via_exec.config_set("timeout", "0")
        assert via_tcp.config_get("timeout") == "0"

        # The server's refusal is a RedisReplyError on both, naming what it refused.
        for ep in (via_exec, via_tcp):
            with pytest.raises(RedisReplyError, match="maxmemory"):
                ep.config_set("maxmemory", "lots")

        # A password with quotes, spaces and a backslash (redis-cli quotes it in its replies): set
        # through exec (never in an argv), then needed by both, and read back alike.
        secret = 'pw with "quotes" and \\ spaces'
        via_exec.config_set("requirepass", secret)
        try:
            for ep in _pair(target, port, "wrong-password"):
                with pytest.raises(HostError, match="authentication failed") as failed:
                    ep.config_get("timeout")
                assert "wrong-password" not in str(failed.value)
            for ep in _pair(target, port, secret):
                assert ep.config_get("requirepass") == secret and ep.config_get("timeout") == "0"
        finally:
            _pair(target, port, secret)[1].config_set("requirepass", "")
        # Like redis-cli, a password given to a server without one is not an error.
        for ep in _pair(target, port, "unneeded-password"):
            assert ep.config_get("maxmemory-policy") == "noeviction"


def test_an_unreachable_url_is_a_host_error_naming_it(demo_stack):
    from stack import free_ports

    port = free_ports(1)[0]
    with Connection(load_inventory(demo_stack.inventory_path), ["@local"]) as (target,):
        ep = endpoint_of(target, {"url": f"redis://:hunter22@127.0.0.1:{port}"})
        with pytest.raises(HostError) as failed:
            ep.config_get("timeout")
        text = str(failed.value)
        assert text.startswith(f"@local: redis redis://127.0.0.1:{port}: cannot connect") and "hunter22" not in text
        with pytest.raises(HostError, match="the URL's database 'x' is not a number"):
            endpoint_of(target, {"url": f"redis://127.0.0.1:{demo_stack.redis_port}/x"}).config_get("timeout")


def test_a_url_with_a_bad_port_is_bad_input_naming_file_and_line(tmp_path):
    from helpers import rollout

    plan = tmp_path / "badurl.yaml"
    plan.write_text("plan: badurl\nversion: 1\ntitle: bad url\nhosts: app_servers\nsteps:\n  - id: r\n"
                    "    redis_config: {url: \"redis://127.0.0.1:abc\", persist: live-only, set: {timeout: 7}}\n"
                    "validate: []\n")
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"app_servers = [('@local', {{'project_dir': {str(tmp_path)!r}, 'compose_file': 'c.yml', "
                         "'compose_project': 'nothere', 'redis_port': 'abc'})]\n")
    for port in ("abc", "{{ host.data.redis_port }}"):  # literal, or a template rendered from host data
        plan.write_text(plan.read_text().replace("127.0.0.1:abc", f"127.0.0.1:{port}"))
        assert rollout("validate", str(plan)).returncode == (2 if port == "abc" else 0)  # a template: when rendered
        result = rollout("diff", str(plan), "-i", str(inventory))
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{plan}:7: steps/0/redis_config/url: not a valid redis:// URL" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
