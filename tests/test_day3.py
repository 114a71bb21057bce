"""Day 3 end to end against the real engine and a real Redis: redis_config, redis_info, cache headers.

Every test runs `rollout` as a subprocess against a throwaway demo stack (tests/stack.py),
so the plans, the journal and the exit codes are exercised exactly as an operator sees them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from helpers import REPO, journal_records, rollout, rollout_bg
from orchestrator.engine import exec_in

DAY3 = (REPO / "plans" / "day3.yaml").read_text()
CACHE_CONTROL = "public, max-age=300, must-revalidate"
# What the demo Redis starts with (the compose command line); CONFIG GET returns these exactly.
ORIGINAL = {"maxmemory-policy": "noeviction", "maxmemory": "0", "tcp-keepalive": "300", "timeout": "0",
            "requirepass": "", "masterauth": ""}
SECRET = "Zq9-day3-requirepass-value-Xk2"


def config_get(stack, key: str, password: str | None = None) -> str:
    """CONFIG GET through redis-cli in the container (REDISCLI_AUTH when the server has a password)."""
    env = {"REDISCLI_AUTH": password} if password else None
    # exec_in retries the engine's occasional lost output of a short exec (seen under load)
    code, out, err = exec_in(stack.container("redis"), ["redis-cli", "--no-auth-warning", "CONFIG", "GET", key],
                             environment=env)
    lines = out.split("\n")
    assert code == 0 and len(lines) >= 2 and lines[0] == key, out + err
    return lines[1]


def redis_state(stack, password: str | None = None) -> dict[str, str]:
    return {k: config_get(stack, k, password) for k in ORIGINAL}


def variant(tmp_path: Path, name: str, replacements: list[tuple[str, str]]) -> Path:
    """plans/day3.yaml with text replaced, as a test plan file (named `name`)."""
    text = DAY3.replace("plan: day3", f"plan: {name}")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def plan_file(tmp_path: Path, name: str, steps: str, validate: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"plan: {name}\nversion: 1\ntitle: test {name}\nhosts: app_servers\nsteps:\n{steps}"
                    + (f"validate:\n{validate}" if validate else ""))
    return path


def hit_rate_of_test_traffic(stack, keys: int = 20, rounds: int = 2) -> tuple[float, list[str]]:
    """Our own traffic: `rounds` passes over `keys` media ids; hit rate over the last pass (INFO deltas)."""
    for n in range(keys):  # warm-up pass
        requests.get(stack.url(f"/api/media/t{n}"), timeout=5).raise_for_status()
    before = stack.redis_info("stats")
    seen = []
    for _ in range(rounds - 1):
        for n in range(keys):
            r = requests.get(stack.url(f"/api/media/t{n}"), timeout=5)
            r.raise_for_status()
            seen.append(r.headers.get("X-Cache", ""))
    after = stack.redis_info("stats")
    hits = int(after["keyspace_hits"]) - int(before["keyspace_hits"])
    misses = int(after["keyspace_misses"]) - int(before["keyspace_misses"])
    return hits / (hits + misses), seen


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    result = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.2), retry=retry_if_result(lambda r: not r),
                      retry_error_callback=lambda state: state.outcome.result())(predicate)
    assert result, f"timed out after {timeout}s waiting for {what}"
    return result


def records_of(stack) -> list[dict]:
    runs = journal_records(stack.project_dir)
    return runs[-1] if runs else []


# -- no stack needed ---------------------------------------------------------------------------------


def test_dangerous_keys_are_refused_by_validate(tmp_path):
    plan = plan_file(tmp_path, "bad-keys", """\
  - redis_config:
      service: redis
      set:
        maxmemory-policy: allkeys-lru
        dir: /tmp
        dbfilename: x.so
        enable-debug-command: "yes"
        unixsocket: /tmp/redis.sock
        rename-command: CONFIG ""
        protected-mode: "no"
""")
    result = rollout("validate", str(plan))
    assert result.returncode == 2, result.stdout + result.stderr
    for line, key in ((10, "dir"), (11, "dbfilename"), (12, "enable-debug-command"), (13, "unixsocket"),
                      (14, "rename-command"), (15, "protected-mode")):
        assert f"{plan}:{line}: steps/0/redis_config/set/{key}: '{key}' cannot be set by a plan" in result.stderr, result.stderr
    assert "maxmemory-policy" not in result.stderr  # the harmless key is not reported
    assert "change it in redis.conf and restart Redis instead" in result.stderr


def test_plan_setting_dir_alone_is_refused_with_exit_2(tmp_path):
    plan = plan_file(tmp_path, "dir-only", "  - redis_config: {service: redis, set: {dir: /var/lib/redis}}\n")
    result = rollout("validate", str(plan))
    assert result.returncode == 2
    assert f"{plan}:6: steps/0/redis_config/set/dir: 'dir' cannot be set by a plan: it makes Redis write or read " \
           "files at a path a client chooses" in result.stderr
    assert rollout("validate", "day3").returncode == 0


# -- against a demo stack ----------------------------------------------------------------------------


def test_day3_applies_end_to_end(demo_stack):
    inv = str(demo_stack.inventory_path)
    assert redis_state(demo_stack) == ORIGINAL
    assert "Cache-Control" not in requests.get(demo_stack.url("/api/media/1"), timeout=5).headers

    diff = rollout("diff", "day3", "-i", inv)
    assert diff.returncode == 0, diff.stderr
    assert "maxmemory-policy: noeviction → allkeys-lru" in diff.stdout
    assert "maxmemory: 0 → 384mb" in diff.stdout and "timeout: 0 → 300" in diff.stdout
    assert "tcp-keepalive already 300 (at its target; not changed)" in diff.stdout
    assert '+      CACHE_MIDDLEWARE: "on"' in diff.stdout
    assert redis_state(demo_stack) == ORIGINAL  # diff changed nothing

    result = rollout("apply", "day3", "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "day3 v" in out and "applied" in out

    assert config_get(demo_stack, "maxmemory-policy") == "allkeys-lru"
    assert config_get(demo_stack, "maxmemory") == str(384 * 1024 * 1024)
    assert config_get(demo_stack, "timeout") == "300" and config_get(demo_stack, "tcp-keepalive") == "300"
    for path in ("/api/health", "/api/media/42"):
        assert requests.get(demo_stack.url(path), timeout=5).headers.get("Cache-Control") == CACHE_CONTROL

    # The plan's own measurement, as journaled by its hit-rate check step.
    probes = [r for r in records_of(demo_stack) if r["t"] == "probe" and r.get("probe") == "redis_info"
              and "hit rate" in r["result"]["detail"]]
    assert probes and probes[0]["result"]["value"] >= 0.8, probes
    # And the test's own traffic: after one pass every key is cached.
    rate, seen = hit_rate_of_test_traffic(demo_stack)
    assert rate >= 0.8 and set(seen) == {"HIT"}, (rate, seen)

    # The undo record holds the values read from the live server before the change.
    undo = next(r["undo"] for r in records_of(demo_stack) if r["t"] == "undo" and r["kind"] == "redis_config")
    assert {k["key"]: k["old"] for k in undo["keys"]} == {"maxmemory-policy": "noeviction", "maxmemory": "0",
                                                          "timeout": "0"}

    again = rollout("diff", "day3", "-i", inv)
    assert "maxmemory-policy already allkeys-lru (at its target; not changed)" in again.stdout
    assert "maxmemory already 402653184 = 384mb" in again.stdout


def restarted_redis_state(stack) -> dict[str, str]:
    """`docker restart` of the redis container, then its settings once it answers again."""
    stack.container("redis").restart(timeout=5)
    wait_for(lambda: exec_in(stack.container("redis"), ["redis-cli", "PING"])[1].startswith("PONG"), 30,
             "redis to answer after the restart")
    return redis_state(stack)


def test_day3_survives_a_redis_restart_and_its_rollback_does_too(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    compose = demo_stack.compose_path.read_bytes()
    plan = "day3"  # the real plan: its hit rate is measured on the Redis recreated from the patched command

    diff = rollout("diff", plan, "-i", inv)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert ("docker-compose.production.yml: redis command: --maxmemory-policy allkeys-lru --maxmemory 384mb "
            "--tcp-keepalive 300 --timeout 300 — persisted in docker-compose.production.yml redis command:") in diff.stdout
    assert "redis is then recreated from it (a `docker restart` re-runs a container's original command)" in diff.stdout
    assert ('-    command: ["redis-server", "--maxmemory-policy", "noeviction", "--save", "", "--appendonly", "no", '
            '"--protected-mode", "no"]') in diff.stdout
    assert ('+    command: ["redis-server", "--maxmemory-policy", "allkeys-lru", "--save", "", "--appendonly", "no", '
            '"--protected-mode", "no", "--maxmemory", "384mb", "--tcp-keepalive", "300", "--timeout", "300"]') in diff.stdout

    result = rollout("apply", plan, "-i", inv, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    applied = {**ORIGINAL, "maxmemory-policy": "allkeys-lru", "maxmemory": str(384 * 1024**2), "timeout": "300"}
    assert redis_state(demo_stack) == applied
    assert restarted_redis_state(demo_stack) == applied  # a live CONFIG SET alone would be noeviction again
    assert compose.replace(b'"noeviction"', b'"allkeys-lru"') != demo_stack.compose_path.read_bytes()
    assert b'"--maxmemory", "384mb"' in demo_stack.compose_path.read_bytes()
    # The compose file and the recreated container agree: a later `compose up` leaves redis alone.
    up = demo_stack.compose("up", "-d", "--no-deps", "redis")
    assert "Recreating" not in up.stdout + up.stderr, up.stdout + up.stderr

    back = rollout("rollback", plan, "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == compose
    assert redis_state(demo_stack) == ORIGINAL
    assert restarted_redis_state(demo_stack) == ORIGINAL


def test_hit_rate_below_floor_rolls_everything_back(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    compose = demo_stack.compose_path.read_bytes()
    # Traffic over 100000 distinct keys: nearly every request is a miss.
    plan = variant(tmp_path, "day3-cold", [("warmup: 5s", "warmup: 1s"), ("window: 10s", "window: 3s"),
                                           ("keys: 20", "keys: 100000")])
    result = rollout("apply", str(plan), "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "check failed: redis_info" in out and "is not ≥ 0.8" in out
    assert "rolled back and verified (3 step(s) undone)" in out

    assert redis_state(demo_stack) == ORIGINAL
    assert demo_stack.compose_path.read_bytes() == compose
    assert "Cache-Control" not in requests.get(demo_stack.url("/api/health"), timeout=5).headers
    records = records_of(demo_stack)
    assert records[-1]["t"] == "end" and records[-1]["outcome"] == "rolled_back"
    undone = [r["id"] for r in records if r["t"] == "undone"]
    assert undone == ["redis", "cache-middleware", "recreate-app"]


def test_invalid_value_fails_at_the_step_and_rolls_back(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    plan = plan_file(tmp_path, "bad-value", """\
  - id: redis
    redis_config:
      service: redis
      set:
        timeout: 123
        maxmemory-policy: nonsense
""", """\
  - redis_info: {service: redis, metric: loading, bound: {eq: 0}}
""")
    result = rollout("apply", str(plan), "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "CONFIG SET maxmemory-policy nonsense refused: ERR CONFIG SET failed" in out
    assert "timeout restored to 0 (read back)" in out  # set before the bad key, restored
    assert "rolled back and verified" in out
    assert redis_state(demo_stack) == ORIGINAL
    assert records_of(demo_stack)[-1]["outcome"] == "rolled_back"


def test_redis_stopped_mid_run_is_an_emergency_then_rollback_finishes(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    plan = plan_file(tmp_path, "redis-stops", f"""\
  - id: redis
    redis_config:
      service: redis
      persist: live-only  # a password is never written into the compose file
      set:
        maxmemory-policy: allkeys-lru
        requirepass: "{SECRET}"
  - id: measure
    check:
      redis_info: {{service: redis, password: "{SECRET}", metric: hit_rate, bound: {{ge: 0.5}}, warmup: 5s, window: 1s}}
""")
    proc = rollout_bg("apply", str(plan), "-i", inv, "--yes")
    try:
        wait_for(lambda: any(r["t"] == "done" and r["step"] == 0 for r in records_of(demo_stack)), 30,
                 "the redis step to finish")
        demo_stack.container("redis").stop(timeout=1)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, out
    assert "EMERGENCY on @local" in out and "is NOT fully undone" in out
    assert "is exited, not running; Redis cannot be reached" in out
    assert "- redis (redis_config)" in out
    redis_name = demo_stack.container("redis").name
    # newest first: the password (authenticating with the new one, read from its backup), then the policy
    manual = [line.strip() for line in out.splitlines() if "redis-cli CONFIG SET" in line]
    assert len(manual) == 2, out
    assert manual[0].startswith('REDISCLI_AUTH="$(tail -n +2 ') and manual[0].endswith(
        f'/backups/{manual[0].split("/backups/")[1].split(")")[0]})" docker exec -e REDISCLI_AUTH {redis_name} '
        "redis-cli CONFIG SET requirepass ''")
    assert manual[1] == f"docker exec {redis_name} redis-cli CONFIG SET maxmemory-policy noeviction"
    assert SECRET not in out

    demo_stack.container("redis").start()
    wait_for(lambda: demo_stack.container("redis").status == "running", 30, "redis to run again")
    back = rollout("rollback", str(plan), "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rolled back and verified" in back.stdout + back.stderr
    assert redis_state(demo_stack) == ORIGINAL
    assert records_of(demo_stack)[-1]["outcome"] == "rolled_back"


def test_requirepass_value_never_appears_in_any_output(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    steps = f"""\
  - id: redis
    redis_config:
      service: redis
      persist: live-only
      set:
        maxmemory-policy: allkeys-lru
        masterauth: "{SECRET}-master"
        requirepass: "{SECRET}"
"""
    validate = f"""\
  - redis_info: {{service: redis, password: "{SECRET}", metric: loading, bound: {{eq: 0}}}}
"""
    plan = plan_file(tmp_path, "secret", steps, validate)
    failing = plan_file(tmp_path, "secret-fails", steps + f"""\
  - id: too-strict
    check:
      redis_info: {{service: redis, password: "{SECRET}", metric: used_memory, bound: {{lt: 1}}}}
""", validate)
    outputs = []

    def run(*args: str, code: int = 0):
        result = rollout(*args)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == code, outputs[-1]
        return outputs[-1]

    # Without the opt-in the password would have to go into the compose file in clear: refused.
    durable = plan_file(tmp_path, "secret-durable", steps.replace("      persist: live-only\n", ""))
    refused = run("apply", str(durable), "-i", inv, "--yes", code=2)
    assert "masterauth would be written in clear text into docker-compose.production.yml" in refused, refused
    assert "persist: live-only" in refused and redis_state(demo_stack) == ORIGINAL
    assert "requirepass: (empty) → ******** (secret)" in run("diff", str(plan), "-i", inv)
    run("diff", str(plan), "-i", inv, "--json")
    run("apply", str(plan), "-i", inv, "--yes")
    assert config_get(demo_stack, "requirepass", SECRET) == SECRET  # the server took it
    assert config_get(demo_stack, "masterauth", SECRET) == f"{SECRET}-master"
    run("status", "-i", inv)
    run("status", "-i", inv, "--json")
    run("history", "-i", inv)
    run("history", "-i", inv, "--json")
    run("diff", str(plan), "-i", inv)  # now every key is at its target
    run("rollback", str(plan), "-i", inv, "--yes")
    assert redis_state(demo_stack) == ORIGINAL
    run("apply", str(failing), "-i", inv, "--yes", code=1)
    assert redis_state(demo_stack) == ORIGINAL
    run("history", "-i", inv)

    for text in outputs:
        assert SECRET not in text, text
    journals = sorted((demo_stack.project_dir / ".rollout" / "runs").glob("*/journal.jsonl"))
    assert len(journals) == 2
    for path in journals:
        assert SECRET not in path.read_text()
    # The old values live in owner-only backups of the run, referenced by path and checksum only.
    undo = next(r["undo"] for r in journal_records(demo_stack.project_dir)[0] if r["t"] == "undo")
    secret_keys = [k for k in undo["keys"] if k.get("secret")]
    assert [k["key"] for k in secret_keys] == ["masterauth", "requirepass"]
    for entry in secret_keys:
        backup = Path(entry["old"]["backup"])
        assert backup.stat().st_mode & 0o077 == 0
        assert set(entry["old"]) == {"backup", "sha256"}
    assert json.dumps(undo).count(SECRET) == 0


# -- the step's pieces, and Redis reached without the demo stack -------------------------------------


def test_values_compare_as_redis_reads_them_back():
    from orchestrator.clients.redis import normalize, same

    assert same("maxmemory", "384mb", "402653184") and same("maxmemory", "1GB", str(1024**3))
    assert same("maxmemory", "100k", "100000") and not same("maxmemory", "384mb", "384000000")
    assert same("maxmemory-policy", "allkeys-LRU", "allkeys-lru")
    assert same("client-output-buffer-limit", "normal 0 0 0 replica 256mb 64mb 60",
                "normal 0 0 0 slave 268435456 67108864 60")
    assert same("save", "3600 1  300 100", "3600 1 300 100")
    assert same("notify-keyspace-events", "KEA", "AKE") and not same("notify-keyspace-events", "Ex", "ex")
    assert not same("requirepass", "Secret", "secret")  # secrets compare exactly
    assert normalize("timeout", 300) == "300"


def test_redis_cli_replies_are_parsed_unambiguously():
    from orchestrator.clients.redis import RedisReplyError, parse_cli_reply

    assert parse_cli_reply(['1) "maxmemory-policy"', '2) "noeviction"'], []) == ["maxmemory-policy", "noeviction"]
    assert parse_cli_reply(['1) "requirepass"', '2) ""'], []) == ["requirepass", ""]
    assert parse_cli_reply(['"a\\"b\\nc\\x41"'], []) == 'a"b\ncA'
    assert parse_cli_reply(["OK"], []) == "OK" and parse_cli_reply(["(nil)"], []) is None
    assert parse_cli_reply(["(integer) 7"], []) == 7 and parse_cli_reply(["(empty array)"], []) == []
    with pytest.raises(RedisReplyError, match=r"ERR nope \*\*\*\*\*\*\*\*"):
        parse_cli_reply(["(error) ERR nope hunter2"], ["hunter2"])


@pytest.fixture
def bare_redis(docker_client, tmp_path):
    """Two Redis containers of a fake compose project: `redis` (with a config file, reached by
    docker exec) and `cache` (no config file, password `url-pw`, published for a redis:// URL)."""
    import secrets

    from stack import free_ports

    from orchestrator import demo

    demo.build_runtime_image(docker_client, REPO / "examples" / "medianest", log=lambda _: None)
    project = f"d3t{secrets.token_hex(3)}"
    port = free_ports(1)[0]
    labels = lambda service: {"com.docker.compose.project": project, "com.docker.compose.service": service}  # noqa: E731
    containers = [
        docker_client.containers.run(
            demo.RUNTIME_IMAGE, ["sh", "-c", "[ -f /data/redis.conf ] || printf 'port 6379\\nsave \"\"\\n"
                                             "maxmemory-policy noeviction\\n' > /data/redis.conf; "
                                             "exec redis-server /data/redis.conf"],
            detach=True, labels=labels("redis"), init=True),
        docker_client.containers.run(
            demo.RUNTIME_IMAGE, ["redis-server", "--save", "", "--requirepass", "url-pw"], detach=True,
            labels=labels("cache"), ports={"6379/tcp": ("127.0.0.1", port)}, init=True),
    ]
    project_dir = tmp_path / "host"
    project_dir.mkdir()
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"app_servers = [('@local', {{'project_dir': {str(project_dir)!r}, "
                         f"'compose_file': 'docker-compose.yml', 'compose_project': {project!r}}})]\n")
    try:
        for c in containers:
            wait_for(lambda c=c: c.exec_run(["redis-cli", "-a", "url-pw", "--no-auth-warning", "PING"])[1]
                     .startswith(b"PONG"), 20, "redis to answer")
        yield {"inventory": str(inventory), "dir": project_dir, "port": port, "redis": containers[0],
               "cache": containers[1]}
    finally:
        for c in containers:
            c.remove(force=True)


def test_a_redis_with_a_config_file_is_persisted_by_config_rewrite_and_restored(bare_redis, tmp_path):
    redis = bare_redis["redis"]
    conf = lambda: redis.exec_run(["cat", "/data/redis.conf"])[1].decode()  # noqa: E731

    def after_restart() -> dict[str, str]:
        redis.restart(timeout=5)
        wait_for(lambda: redis.exec_run(["redis-cli", "PING"])[1].startswith(b"PONG"), 20, "redis to answer")
        return {k: redis.exec_run(["redis-cli", "CONFIG", "GET", k])[1].decode().split("\n")[1]
                for k in ("maxmemory-policy", "timeout")}

    # No `persist` key: a Redis with a config file (and no compose command) is persisted there.
    plan = plan_file(tmp_path, "persist", """\
  - id: redis
    redis_config:
      service: redis
      set: {maxmemory-policy: allkeys-lru, timeout: 42}
""")
    diff = rollout("diff", str(plan), "-i", bare_redis["inventory"])
    assert "persisted by CONFIG REWRITE to /data/redis.conf" in diff.stdout, diff.stdout + diff.stderr
    result = rollout("apply", str(plan), "-i", bare_redis["inventory"], "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "maxmemory-policy allkeys-lru" in conf() and "timeout 42" in conf()
    assert after_restart() == {"maxmemory-policy": "allkeys-lru", "timeout": "42"}
    back = rollout("rollback", str(plan), "-i", bare_redis["inventory"], "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "maxmemory-policy noeviction" in conf() and "timeout 42" not in conf()
    assert after_restart() == {"maxmemory-policy": "noeviction", "timeout": "0"}


def test_redis_url_with_password_and_persist_without_config_file(bare_redis, tmp_path):
    inv, port = bare_redis["inventory"], bare_redis["port"]
    cache = bare_redis["cache"]

    def get(key: str) -> str:
        return cache.exec_run(["redis-cli", "--no-auth-warning", "-a", "url-pw", "CONFIG", "GET", key])[1].decode().split("\n")[1]

    no_file = plan_file(tmp_path, "no-file", f"""\
  - redis_config: {{url: "redis://:url-pw@127.0.0.1:{port}", persist: true, set: {{timeout: 7}}}}
""")
    # No config file and no compose command to patch: a live-only change must be opted in to,
    # with the default as with the older `persist: true`.
    implicit = plan_file(tmp_path, "implicit", f"""\
  - redis_config: {{url: "redis://:url-pw@127.0.0.1:{port}", set: {{timeout: 7}}}}
""")
    for refused in (no_file, implicit):
        for command in ("diff", "apply"):
            result = rollout(command, str(refused), "-i", inv, *(["--yes"] if command == "apply" else []))
            assert result.returncode == 2, result.stdout + result.stderr
            assert ("cannot make this change survive a restart: it was started without a config file (INFO server "
                    "config_file is empty) and is reached by url") in result.stderr, result.stderr
            assert "opt in on this step with `persist: live-only`" in result.stderr
            assert get("timeout") == "0" and not (bare_redis["dir"] / ".rollout" / "runs").exists()
            assert "url-pw" not in result.stdout + result.stderr

    # Through the RESP client: set, read back, then a failing check rolls it back.
    plan = plan_file(tmp_path, "via-url", f"""\
  - id: redis
    redis_config: {{url: "redis://:url-pw@127.0.0.1:{port}/0", persist: live-only, set: {{timeout: 7, maxmemory: 100mb}}}}
  - id: strict
    check:
      redis_info: {{url: "redis://127.0.0.1:{port}", password: url-pw, metric: used_memory, bound: {{lt: 1}}}}
""")
    result = rollout("apply", str(plan), "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"redis redis://127.0.0.1:{port}/0: maxmemory 0 → 104857600 (read back)" in out
    assert "timeout restored to 0 (read back)" in out and "url-pw" not in out
    assert get("timeout") == "0" and get("maxmemory") == "0"

    wrong = plan_file(tmp_path, "wrong-pw", f"""\
  - redis_config: {{url: "redis://:nope@127.0.0.1:{port}", persist: live-only, set: {{timeout: 7}}}}
""")
    result = rollout("diff", str(wrong), "-i", inv)
    assert result.returncode == 2 and "authentication failed" in result.stderr and "nope" not in result.stderr
