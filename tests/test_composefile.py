"""Round-trip edits of compose files: only the targeted lines change."""
from __future__ import annotations

import difflib

import pytest

from orchestrator import composefile
from orchestrator.errors import InputError

COMPOSE = '''\
version: '3.8'

# MediaNest production stack
services:
  app:
    image: medianest/app:demo
    init: true
    environment:
      NODE_OPTIONS: "--max-old-space-size=1024"  # heap budget
      SESSION_SECRET: demo-not-a-real-secret
    deploy:
      resources:
        limits:
          memory: 2G
          cpus: '1.0'
        reservations:
          memory: 1G
          cpus: '0.5'
    labels:
      description: "a deliberately long label value that must survive the round trip without being re-wrapped by the yaml emitter at all"
  worker:
    image: medianest/app:demo
    environment:
      - QUEUE=default
      - NODE_OPTIONS=--max-old-space-size=512
    ports:
      - "127.0.0.1:${PORT:-18080}:3000"
'''


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_unchanged_round_trip_is_byte_identical():
    assert composefile.patch(COMPOSE, "c.yml", "app") == COMPOSE


def test_day1_patch_touches_only_the_targeted_lines():
    new = composefile.patch(COMPOSE, "c.yml", "app", limits={"memory": "1G", "cpus": "0.75"},
                            reservations={"memory": "512M"},
                            environment={"NODE_OPTIONS": "--max-old-space-size=384 --optimize-for-size"})
    assert changed_lines(COMPOSE, new) == [
        '-      NODE_OPTIONS: "--max-old-space-size=1024"  # heap budget',
        # the comment stays; ruamel keeps its column unless the longer value pushes it
        '+      NODE_OPTIONS: "--max-old-space-size=384 --optimize-for-size" # heap budget',
        '-          memory: 2G',
        "-          cpus: '1.0'",
        '+          memory: 1G',
        "+          cpus: '0.75'",
        '-          memory: 1G',
        '+          memory: 512M',
    ]


def test_list_style_environment_keeps_its_form():
    new = composefile.patch(COMPOSE, "c.yml", "worker", environment={"NODE_OPTIONS": "--max-old-space-size=256"})
    assert changed_lines(COMPOSE, new) == [
        "-      - NODE_OPTIONS=--max-old-space-size=512",
        "+      - NODE_OPTIONS=--max-old-space-size=256",
    ]
    assert composefile.declared(new, "c.yml", "worker")["environment"]["NODE_OPTIONS"] == "--max-old-space-size=256"


def test_missing_sections_are_created_with_quoted_cpus():
    new = composefile.patch(COMPOSE, "c.yml", "worker", limits={"memory": "256M", "cpus": "0.25"})
    declared = composefile.declared(new, "c.yml", "worker")
    assert declared["limits"] == {"memory": "256M", "cpus": "0.25"}
    assert "cpus: '0.25'" in new
    assert new.startswith(COMPOSE[: COMPOSE.index("  worker:")])  # app untouched


def test_unknown_service_names_the_known_ones():
    with pytest.raises(InputError, match=r"c.yml: no service 'api' \(services: app, worker\)"):
        composefile.patch(COMPOSE, "c.yml", "api", limits={"memory": "1G"})


def test_not_a_compose_file():
    with pytest.raises(InputError, match="no `services:` mapping"):
        composefile.patch("just: text\n", "c.yml", "app", limits={"memory": "1G"})


# -- a Redis service's command: line (redis_config persists there) ------------------------

REDIS = '''\
services:
  redis:
    image: redis
    # no config file: everything on the command line
    command: ["redis-server", "--maxmemory-policy", "noeviction", "--save", "", "--requirepass", "old-pw"]
  cache:
    image: redis
    command: redis-server /etc/redis.conf --save '' --client-output-buffer-limit normal 0 0 0
  shell:
    image: redis
    command: sh -c "exec redis-server --port 7000"
  plain:
    image: redis
'''




def test_redis_command_list_form_replaced_in_place_and_appended():
    out = composefile.patch_redis_command(REDIS, "c.yml", "redis", {"maxmemory-policy": "allkeys-lru", "timeout": "300"})
    assert changed_lines(REDIS, out) == [
        '-    command: ["redis-server", "--maxmemory-policy", "noeviction", "--save", "", "--requirepass", "old-pw"]',
        '+    command: ["redis-server", "--maxmemory-policy", "allkeys-lru", "--save", "", "--requirepass", "old-pw", '
        '"--timeout", "300"]',
    ]
    assert composefile.redis_args(composefile.redis_command(out, "c.yml", "redis")) == {
        "maxmemory-policy": ["allkeys-lru"], "save": [""], "requirepass": ["old-pw"], "timeout": ["300"]}
    assert composefile.patch_redis_command(out, "c.yml", "redis", {"timeout": "300"}) == out  # already so


def test_redis_command_string_form_with_a_config_file_and_multi_word_values():
    out = composefile.patch_redis_command(REDIS, "c.yml", "cache", {"client-output-buffer-limit": "normal 1 2 3",
                                                                     "maxmemory": "384mb"})
    assert changed_lines(REDIS, out) == [
        "-    command: redis-server /etc/redis.conf --save '' --client-output-buffer-limit normal 0 0 0",
        "+    command: redis-server /etc/redis.conf --save '' --client-output-buffer-limit 'normal 1 2 3' --maxmemory 384mb",
    ]


def test_only_a_direct_redis_server_command_is_patched():
    assert composefile.redis_command(REDIS, "c.yml", "shell") is None
    assert composefile.redis_command(REDIS, "c.yml", "plain") is None
    with pytest.raises(InputError, match="c.yml: service 'shell' has no redis-server `command:` to patch"):
        composefile.patch_redis_command(REDIS, "c.yml", "shell", {"timeout": "1"})


def test_a_password_on_the_command_line_is_redacted_in_the_diff():
    from orchestrator.diff import unified
    from orchestrator.steps.redis_persistence import redacted_command

    out = composefile.patch_redis_command(REDIS, "c.yml", "redis", {"timeout": "300"})
    text = unified(redacted_command(REDIS, "c.yml", "redis"), redacted_command(out, "c.yml", "redis"), "c.yml")
    assert "old-pw" not in text and '"--requirepass", "********"' in text and '"--timeout", "300"' in text
