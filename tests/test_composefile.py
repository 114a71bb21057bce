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
