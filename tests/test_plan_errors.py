"""The bad-input corpus: plan files and inventories (issue 2 part 3, issue 6 part 3).

Every bad plan is a small mutation of BASE (a valid plan that uses every step
and probe kind). For each, `load_plan` raises PlanInvalid and we assert the
COMPLETE list of issues, in order: each one `FILE:LINE: PATH: MESSAGE` exactly,
or - where the message lists schema keys that other work keeps extending - its
exact `FILE:LINE: PATH: ` and the start of the message (`Prefix`). A handful go
through `rollout validate` as a subprocess (exit 2, the same lines on stderr).

Then: the real plans validate; `rollout validate` with no argument; a BOM;
host-level bad input through `rollout diff` on a throwaway project (no Docker:
each error comes before any engine call) with the project's files unchanged;
inventory errors; and the wheel (`pip install .` into a fresh venv) carries the
schema.

No Docker is needed by anything here.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.plan import PlanInvalid
from orchestrator.planfile import load_plan

REPO = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).parent / "rollout"
ROLLOUT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "orchestrator"]
FILE = "plans/bad.yaml"  # how every corpus file is named in its issues

# Line numbers matter: every expected issue below names one. test_base_landmarks
# pins the lines the cases rely on.
BASE = """\
# yaml-language-server: $schema=../schemas/plan.schema.json
plan: corpus
version: 1
title: Bad-input corpus base
hosts: app_servers
steps:
  - id: limits
    compose_limits:
      service: app
      limits: {memory: 1G, cpus: "0.75"}
      reservations: {memory: 512M, cpus: "0.5"}
      environment:
        NODE_OPTIONS: "--max-old-space-size=384"
  - id: recreate-app
    recreate: {services: [app]}
  - id: health
    check:
      http:
        url: "http://127.0.0.1:{{ host.data.app_port }}/api/health"
        status: 200
  - id: soak
    watch:
      service: app
      for: 4h
      every: 30s
      warn: {memory_percent: 80}
      fail: {memory_percent: 90}
  - id: config
    file_swap:
      source: frontend/next.config.optimized.js
      destination: frontend/next.config.js
  - id: build
    image_build:
      context: frontend
      dockerfile: Dockerfile.optimized
      tag: "{{ host.data.frontend_image }}"
      keep_as: stable
  - id: redis
    redis_config:
      service: redis
      set:
        maxmemory-policy: allkeys-lru
validate:
  - http:
      url: "http://127.0.0.1:{{ host.data.app_port }}/api/health"
      status: 200
  - stats:
      service: app
      warn: {memory_percent: 80}
      fail: {memory_percent: 90}
  - image_path_size:
      image: "{{ host.data.frontend_image }}"
      path: /app/.next/static
      budget: 50MB
  - redis_info:
      service: redis
      metric: hit_rate
      bound: {ge: 0.8}
on_failure: rollback
"""

LANDMARKS = {
    2: "plan: corpus", 3: "version: 1", 4: "title: Bad-input corpus base", 6: "steps:",
    10: 'limits: {memory: 1G, cpus: "0.75"}', 11: 'reservations: {memory: 512M, cpus: "0.5"}',
    14: "- id: recreate-app", 15: "recreate: {services: [app]}", 18: "http:", 24: "for: 4h", 25: "every: 30s",
    26: "warn: {memory_percent: 80}", 27: "fail: {memory_percent: 90}", 30: "source: frontend/next.config.optimized.js",
    31: "destination: frontend/next.config.js", 36: 'tag: "{{ host.data.frontend_image }}"', 37: "keep_as: stable",
    42: "maxmemory-policy: allkeys-lru", 45: 'url: "http://127.0.0.1:{{ host.data.app_port }}/api/health"',
    49: "warn: {memory_percent: 80}", 54: "budget: 50MB", 55: "- redis_info:", 59: "on_failure: rollback",
}


def edit(*edits: tuple[int, str, str]) -> str:
    """BASE with `old` replaced by `new` on line N (1-based) for each (N, old, new).

    Replacing a whole line by "" leaves it blank, so later line numbers hold.
    `new` may hold newlines: the lines after it move down.
    """
    lines = BASE.splitlines(keepends=True)
    for n, old, new in sorted(edits, key=lambda e: -e[0]):
        assert old in lines[n - 1], f"line {n} is {lines[n - 1]!r}, has no {old!r}"
        lines[n - 1] = lines[n - 1].replace(old, new, 1)
    return "".join(lines)


def blank(*numbers: int) -> str:
    """BASE with these lines emptied (numbering kept)."""
    lines = BASE.splitlines(keepends=True)
    for n in numbers:
        lines[n - 1] = "\n"
    return "".join(lines)


MINIMAL = "plan: x\nversion: 1\ntitle: t\nhosts: app_servers\nsteps:\n"


class Prefix(str):
    """An expected issue matched by its start (its tail lists schema keys that may grow)."""


@dataclass
class Case:
    id: str
    content: str | bytes
    expect: list[str]
    xfail: str | None = None  # reason, for checks that belong to other modules and are not in yet

    @property
    def raw(self) -> bytes:
        return self.content if isinstance(self.content, bytes) else self.content.encode("utf-8")


def billion_laughs() -> str:
    lines = [MINIMAL + "  - recreate: {services: [app]}", 'lol: &a ["lol"]']
    for i in range(9):
        prev = "a" if i == 0 else f"l{i - 1}"
        lines.append(f"l{i}: &l{i} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


KINDS_STEP = "(known kinds: check, compose_limits, file_swap, image_build, recreate, redis_config, watch"
TOP_KEYS = "allowed: description, hosts, on_failure, plan, steps, title, validate, version)"
CPU_HINT = '(use a quoted decimal such as "0.75")'
SIZE_HINT = "(use 512M or 1G)"
DUR_HINT = "(use e.g. 500ms, 30s, 5m or 4h)"
TAG_MSG = "is not allowed (plans hold plain strings, numbers, lists and mappings; remove the tag)"
ALIAS_MSG = "are not allowed in plans (write the value out)"
EMPTY = f"{FILE}:1: the file is empty; a plan needs plan, version, title, hosts and steps"
L = f"{FILE}:"  # prefix helper for readability

CASES: list[Case] = [
    # -- malformed YAML --------------------------------------------------------------
    Case("yaml-bad-indentation", edit((10, "      limits", "     limits")),
         [f"{L}10: YAML syntax: expected <block end>, but found '<block mapping start>' "
          "(while parsing a block mapping at line 7); check the indentation"]),
    Case("yaml-unclosed-quote-in-flow", edit((10, '"0.75"}', '"0.75}')),
         [f"{L}11: YAML syntax: expected ',' or '}}', but got '<scalar>' "
          "(while parsing a flow mapping at line 10); check the { } braces and commas"]),
    Case("yaml-unclosed-quote-at-eof", edit((59, "rollback", '"rollback')),
         [f"{L}60: YAML syntax: found unexpected end of stream (while scanning a quoted scalar at line 59); "
          "close the quote"]),
    Case("yaml-unclosed-bracket", edit((15, "[app]}", "[app}")),
         [f"{L}15: YAML syntax: expected ',' or ']', but got '}}' (while parsing a flow sequence at line 15); "
          "check the [ ] brackets and commas"]),
    Case("yaml-tab-indent", edit((46, "      status: 200", "\tstatus: 200")),
         [f"{L}46: YAML syntax: found character '\\t' that cannot start any token; indent with spaces, not tabs"]),
    Case("yaml-colon-in-plain-value", edit((4, "Bad-input corpus base", "Day 1: limits")),
         [f"{L}4: YAML syntax: mapping values are not allowed here; put a space after ':' or quote the value"]),
    Case("yaml-two-documents", BASE + "---\nplan: other\n",
         [f"{L}60: YAML syntax: expected a single document in the stream, but found another document; "
          "a plan is one YAML document: remove the extra '---'"]),
    Case("top-level-list", "- plan: corpus\n  version: 1\n",
         [f"{L}1: a plan is a mapping (plan:, version:, steps: …), not a list"]),
    Case("top-level-scalar", "just a sentence\n",
         [f"{L}1: a plan is a mapping (plan:, version:, steps: …), not the string 'just a sentence'"]),
    # -- wrong types -----------------------------------------------------------------
    Case("version-string", edit((3, "1", '"1"')),
         [f"{L}3: version: must be an integer, not the string '1' (write 1 without quotes)"]),
    Case("version-zero", edit((3, "1", "0")), [f"{L}3: version: must be at least 1, not 0"]),
    Case("version-float", edit((3, "1", "1.5")), [f"{L}3: version: must be an integer, not the number 1.5"]),
    Case("version-huge", edit((3, "1", "9" * 30)), [f"{L}3: version: must be at most 1000000, not {'9' * 30}"]),
    Case("steps-mapping", MINIMAL + "  limits: {service: app}\n",
         [f"{L}5: steps: must be a list, not a mapping"]),
    Case("steps-empty", MINIMAL.replace("steps:\n", "steps: []\n"), [f"{L}5: steps: must not be empty"]),
    Case("cpus-number", edit((10, '"0.75"', "0.75")),
         [f"{L}10: steps/0/compose_limits/limits/cpus: 0.75 is not a CPU count {CPU_HINT}"]),
    Case("cpus-comma", edit((10, '"0.75"', '"0,75"')),
         [f"{L}10: steps/0/compose_limits/limits/cpus: '0,75' is not a CPU count {CPU_HINT}"]),
    Case("cpus-negative", edit((10, '"0.75"', '"-1"')),
         [f"{L}10: steps/0/compose_limits/limits/cpus: '-1' is not a CPU count {CPU_HINT}"]),
    Case("cpus-zero", edit((10, '"0.75"', '"0"')),
         [f"{L}10: steps/0/compose_limits/limits/cpus: '0' must be greater than zero"]),
    Case("env-value-number", edit((13, '"--max-old-space-size=384"', "384")),
         [f'{L}13: steps/0/compose_limits/environment/NODE_OPTIONS: must be a string, not the integer 384 '
          '(quote it: "384")']),
    Case("env-bad-name", edit((13, "NODE_OPTIONS", "1NODE")),
         [f"{L}13: steps/0/compose_limits/environment/1NODE: '1NODE' is not an environment variable name "
          "(letters, digits and _, not starting with a digit)"]),
    Case("title-null", edit((4, " Bad-input corpus base", "")),
         [f"{L}4: title: must be a string, not empty (no value)"]),
    Case("title-date", edit((4, "Bad-input corpus base", "2024-01-01")),
         [f'{L}4: title: must be a string, not the date 2024-01-01 (quote it: "2024-01-01")']),
    Case("bool-as-yes", edit((20, "status: 200", "status: 200\n        headers: {X-Cache: {present: yes}}")),
         [f"{L}21: steps/2/check/http/headers/X-Cache/present: must be true or false, not the string 'yes' "
          "(write true or false, without quotes)"]),
    # A live-only Redis change is an explicit opt-in; `false` is not one (what would persist it?).
    Case("redis-persist-false", edit((42, "allkeys-lru", "allkeys-lru\n      persist: false")),
         [f"{L}43: steps/6/redis_config/persist: the boolean false is not one of: true, live-only"]),
    Case("redis-persist-typo", edit((42, "allkeys-lru", "allkeys-lru\n      persist: live")),
         [f"{L}43: steps/6/redis_config/persist: 'live' is not one of: true, live-only"]),
    Case("step-is-a-string", edit((14, "- id: recreate-app", "- recreate-app"), (15, "recreate: {services: [app]}", "")),
         [f"{L}14: steps/1: must be a mapping, not the string 'recreate-app'"]),
    Case("step-body-empty", edit((15, " {services: [app]}", "")),
         [f"{L}15: steps/1/recreate: must be a mapping, not empty (no value)"]),
    # -- unknown kinds and keys, at every level ----------------------------------------
    Case("unknown-step-kind", edit((15, "recreate:", "restart:")),
         [Prefix(f"{L}15: steps/1/restart: unknown step kind 'restart' {KINDS_STEP}")]),
    Case("step-kind-typo", edit((8, "compose_limits:", "compose_limit:")),
         [Prefix(f"{L}8: steps/0/compose_limit: unknown step kind 'compose_limit' "
                 "(did you mean 'compose_limits'? known kinds: check, compose_limits,")]),
    Case("unknown-probe-kind", edit((55, "redis_info:", "redis_stats:")),
         [Prefix(f"{L}55: validate/3/redis_stats: unknown probe kind 'redis_stats' (did you mean 'stats'? "
                 "known kinds: http, image_path_size, redis_info, stats")]),
    Case("unknown-probe-kind-in-check", edit((18, "http:", "ping:")),
         [Prefix(f"{L}18: steps/2/check/ping: unknown probe kind 'ping' (known kinds: http, ")]),
    Case("unknown-top-level-key", BASE + "owner: ops\n", [f"{L}60: owner: unknown key 'owner' ({TOP_KEYS}"]),
    Case("top-level-key-typo", edit((6, "steps:", "step:")),
         [f"{L}2: missing required key 'steps'",
          f"{L}6: step: unknown key 'step' (did you mean 'steps'? {TOP_KEYS}"]),
    Case("unknown-key-in-resources", edit((11, "{memory:", "{memroy:")),
         [f"{L}11: steps/0/compose_limits/reservations/memroy: unknown key 'memroy' "
          "(did you mean 'memory'? allowed: cpus, memory)"]),
    Case("unknown-key-in-step-body", edit((37, "stable", "stable\n      push: true")),
         [Prefix(f"{L}38: steps/5/image_build/push: unknown key 'push' (allowed: build_args, context, ")]),
    Case("unknown-key-beside-step-kind", edit((15, "[app]}", "[app]}\n    timeout: 5s")),
         [f"{L}16: steps/1/timeout: unknown key 'timeout' in a step "
          "(a step holds an optional id and exactly one kind)"]),
    Case("unknown-key-in-probe", edit((57, "hit_rate", "hit_rate\n      db: 0")),
         [Prefix(f"{L}58: validate/3/redis_info/db: unknown key 'db' (allowed: bound, metric, ")]),
    Case("step-with-two-kinds",
         edit((15, "[app]}", "[app]}\n    watch: {service: app, for: 1m, every: 1s, fail: {memory_percent: 90}}")),
         [Prefix(f"{L}14: steps/1: one step, one kind: found recreate, watch (one of: check, compose_limits,")]),
    Case("step-without-kind", blank(15),
         [Prefix(f"{L}14: steps/1: the step has no kind (one of: check, compose_limits,")]),
    Case("probe-with-two-kinds",
         edit((55, "- redis_info:", "- {http: {url: 'http://x'}, stats: {service: app, fail: {memory_percent: 1}}}\n"
                                    "  - redis_info:")),
         [Prefix(f"{L}55: validate/3: a probe has exactly one kind (one of: http, image_path_size, ")]),
    # -- missing required keys ---------------------------------------------------------
    Case("missing-title", blank(4), [f"{L}2: missing required key 'title'"]),
    Case("missing-compose-service", blank(9), [f"{L}8: steps/0/compose_limits: missing required key 'service'"]),
    Case("missing-watch-fail", blank(27), [f"{L}22: steps/3/watch: missing required key 'fail'"]),
    Case("missing-http-url", blank(45), [f"{L}44: validate/0/http: missing required key 'url'"]),
    Case("compose-limits-changes-nothing", blank(10, 11, 12, 13),
         [f"{L}8: steps/0/compose_limits: nothing to change: give at least one of limits, reservations, environment"]),
    Case("empty-resources", edit((10, '{memory: 1G, cpus: "0.75"}', "{}")),
         [f"{L}10: steps/0/compose_limits/limits: must not be empty (give at least one of: cpus, memory)"]),
    # -- sizes -----------------------------------------------------------------------------
    Case("size-1Gb", edit((10, "1G,", "1Gb,")),
         [f"{L}10: steps/0/compose_limits/limits/memory: '1Gb' is not a size {SIZE_HINT}"]),
    Case("size-negative", edit((10, "1G,", "-1G,")),
         [f"{L}10: steps/0/compose_limits/limits/memory: '-1G' is not a size {SIZE_HINT}"]),
    Case("size-two-dots", edit((10, "1G,", "1.5.G,")),
         [f"{L}10: steps/0/compose_limits/limits/memory: '1.5.G' is not a size {SIZE_HINT}"]),
    Case("size-unknown-unit", edit((54, "50MB", "10X")),
         [f"{L}54: validate/2/image_path_size/budget: '10X' is not a size {SIZE_HINT}"]),
    Case("size-bare-number", edit((10, "1G,", "1024,")),
         [f"{L}10: steps/0/compose_limits/limits/memory: 1024 is not a size {SIZE_HINT}"]),
    Case("reservation-above-limit", edit((11, "512M", "2G")),
         [f"{L}11: steps/0/compose_limits/reservations/memory: reservation 2G exceeds the limit 1G"]),
    Case("cpu-reservation-above-limit", edit((11, '"0.5"', '"1.5"')),
         [Prefix(f"{L}11: steps/0/compose_limits/reservations/cpus: ")]),
    # -- durations -----------------------------------------------------------------------------
    Case("duration-zero", edit((25, "30s", "0s")), [f"{L}25: steps/3/watch/every: '0s' must be greater than zero"]),
    Case("duration-negative", edit((25, "30s", "-5s")),
         [f"{L}25: steps/3/watch/every: '-5s' must be greater than zero"]),
    Case("duration-words", edit((24, "4h", "4 hours")),
         [f"{L}24: steps/3/watch/for: '4 hours' is not a duration {DUR_HINT}"]),
    # A bare number used to crash watch.check_spec (parse_duration(30) → AttributeError).
    Case("duration-bare-number", edit((25, "30s", "30")),
         [f"{L}25: steps/3/watch/every: 30 is not a duration {DUR_HINT}"]),
    Case("duration-too-many-digits", edit((24, "4h", "99999999h")),
         [f"{L}24: steps/3/watch/for: '99999999h' is not a duration {DUR_HINT}"]),
    Case("retry-interval-zero", edit((20, "status: 200", "status: 200\n        retry: {interval: 0ms}")),
         [f"{L}21: steps/2/check/http/retry/interval: '0ms' must be greater than zero"]),
    Case("every-longer-than-for", edit((24, "4h", "10s")),
         [f"{L}25: steps/3/watch/every: every 30s is longer than the window for 10s"]),
    # -- thresholds -------------------------------------------------------------------------------
    Case("watch-warn-above-fail", edit((26, "80", "95")),
         [f"{L}26: steps/3/watch/warn/memory_percent: warn 95 must be below fail 90"]),
    Case("stats-warn-equals-fail", edit((49, "80", "90")),
         [f"{L}49: validate/1/stats/warn/memory_percent: warn 90 must be below fail 90"]),
    Case("percent-zero", edit((26, "80", "0")),
         [f"{L}26: steps/3/watch/warn/memory_percent: must be greater than 0, not 0"]),
    Case("percent-above-100", edit((27, "90", "150")),
         [f"{L}27: steps/3/watch/fail/memory_percent: must be at most 100, not 150"]),
    # -- duplicates -------------------------------------------------------------------------------
    Case("duplicate-top-level-key", edit((3, "version: 1", "version: 1\nversion: 2")),
         [f"{L}4: version: duplicate key (first at line 3; each key may appear once)"]),
    Case("duplicate-nested-key", edit((37, "stable", "stable\n      tag: other")),
         [f"{L}38: steps/5/image_build/tag: duplicate key (first at line 36; each key may appear once)"]),
    Case("duplicate-key-in-flow-mapping", edit((10, "{memory: 1G,", "{memory: 1G, memory: 2G,")),
         [f"{L}10: steps/0/compose_limits/limits/memory: duplicate key (first at line 10; each key may appear once)"]),
    Case("every-duplicate-key-reported", edit((3, "version: 1", "version: 1\nversion: 2"), (24, "4h", "4h\n      for: 5h")),
         [f"{L}4: version: duplicate key (first at line 3; each key may appear once)",
          f"{L}26: steps/3/watch/for: duplicate key (first at line 25; each key may appear once)"]),
    Case("duplicate-step-id", edit((16, "health", "limits")),
         [f"{L}16: steps/2/id: duplicate step id 'limits' (also steps/0; ids must be unique)"]),
    Case("duplicate-service-in-recreate", edit((15, "[app]", "[app, app]")),
         [f"{L}15: steps/1/recreate/services: lists 'app' more than once (each item may appear once)"]),
    # -- YAML tags, anchors and aliases -------------------------------------------------------------
    Case("tag-python-object", edit((4, "Bad-input corpus base", "!!python/object:os.system {}")),
         [f"{L}4: title: YAML tag !!python/object:os.system {TAG_MSG}"]),
    Case("tag-python-apply", edit((15, "{services: [app]}", '!!python/object/apply:os.system ["id"]')),
         [f"{L}15: steps/1/recreate: YAML tag !!python/object/apply:os.system {TAG_MSG}"]),
    # Decided: !!binary (bytes), !!timestamp, !!set, custom tags are refused like object tags.
    Case("tag-binary", edit((4, "Bad-input corpus base", "!!binary aGVsbG8=")),
         [f"{L}4: title: YAML tag !!binary {TAG_MSG}"]),
    Case("tag-timestamp", edit((4, "Bad-input corpus base", "!!timestamp 2001-12-14")),
         [f"{L}4: title: YAML tag !!timestamp {TAG_MSG}"]),
    Case("tag-set", edit((15, "{services: [app]}", "!!set {app}")),
         [f"{L}15: steps/1/recreate: YAML tag !!set {TAG_MSG}"]),
    Case("tag-custom", edit((4, "Bad-input corpus base", "!env TITLE")), [f"{L}4: title: YAML tag !env {TAG_MSG}"]),
    Case("anchor-and-alias", edit((7, "id: limits", "id: &x limits"), (16, "id: health", "id: *x")),
         [f"{L}7: steps/0/id: YAML anchors and aliases (&x) {ALIAS_MSG}",
          f"{L}16: steps/2/id: YAML anchors and aliases (*x) {ALIAS_MSG}"]),
    Case("merge-key", edit((9, "service: app", "<<: *x")),
         [f"{L}9: steps/0/compose_limits/<<: YAML anchors and aliases (*x) {ALIAS_MSG}"]),
    Case("billion-laughs", billion_laughs(),
         [f"{L}7: lol: YAML anchors and aliases (&a) {ALIAS_MSG}"]
         + [f"{L}{8 + i}: l{i}: YAML anchors and aliases (&l{i}) {ALIAS_MSG}" for i in range(9)]),
    # -- huge values -----------------------------------------------------------------------------------
    Case("file-over-1MiB", BASE + "# " + "x" * (2 * 1024 * 1024) + "\n",
         [f"{FILE}: the file is {len(BASE) + 2 * 1024 * 1024 + 3} bytes; a plan is at most 1048576 bytes (1 MiB)"]),
    Case("title-10k-characters", edit((4, "Bad-input corpus base", "x" * 10_000)),
         [f"{L}4: title: too long: 10000 characters (at most 200)"]),
    Case("url-10k-characters", edit((45, "127.0.0.1", "a" * 10_000)),
         [f"{L}45: validate/0/http/url: too long: 10043 characters (at most 2048)"]),
    Case("150-steps", MINIMAL + "  - recreate: {services: [app]}\n" * 150,
         [f"{L}5: steps: too many items: 150 (at most 100)"]),
    Case("10k-steps", MINIMAL + "  - recreate: {services: [app]}\n" * 10_000,
         [f"{L}5: steps: too many items: more than 1000"]),
    Case("nested-5000-deep", MINIMAL.replace("steps:\n", "steps: " + "[" * 5000 + "]" * 5000 + "\n"),
         [f"{L}5: steps{'/0' * 31}: nested more than 32 levels deep"]),
    # -- empty -------------------------------------------------------------------------------------------
    Case("empty-file", "", [EMPTY]),
    Case("whitespace-only", "  \n\n \n", [EMPTY]),
    Case("comments-only", "# yaml-language-server: $schema=../schemas/plan.schema.json\n# nothing yet\n", [EMPTY]),
    Case("document-marker-only", "---\n", [EMPTY]),
    # -- encodings -----------------------------------------------------------------------------------------
    Case("latin-1-byte", edit((4, "Bad-input corpus base", "Café")).encode("latin-1"),
         [f"{L}4: title: not UTF-8: byte 0xe9 at column 11; save the file as UTF-8"]),
    Case("utf-16", BASE.encode("utf-16"),
         [f"{L}1: the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"]),
    Case("nul-byte", edit((4, "corpus base", "corpus\x00base")),
         [f"{L}4: title: control character U+0000 at column 24 is not allowed (a plan is plain text)"]),
    # -- templates -----------------------------------------------------------------------------------------
    Case("template-not-host-data", edit((45, "host.data.app_port", "host.vars.app_port")),
         [f"{L}45: validate/0/http/url: unsupported template '{{{{ host.vars.app_port }}}}' (use {{{{ host.data.KEY }}}})"]),
    Case("template-with-call", edit((36, "host.data.frontend_image", "lookup('env', 'X')")),
         [f"{L}36: steps/5/image_build/tag: unsupported template \"{{{{ lookup('env', 'X') }}}}\" "
          "(use {{ host.data.KEY }})"]),
    Case("template-with-filter", edit((19, "host.data.app_port", "host.data.app_port | int")),
         [f"{L}19: steps/2/check/http/url: unsupported template '{{{{ host.data.app_port | int }}}}' "
          "(use {{ host.data.KEY }})"]),
    # -- redis_config keys a plan must not set --------------------------------------------------------------
    Case("redis-dir", edit((42, "maxmemory-policy: allkeys-lru", "dir: /tmp")),
         [Prefix(f"{L}42: steps/6/redis_config/set/dir: 'dir' cannot be set by a plan")]),
    Case("redis-dbfilename", edit((42, "maxmemory-policy: allkeys-lru", "dbfilename: x.rdb")),
         [Prefix(f"{L}42: steps/6/redis_config/set/dbfilename: 'dbfilename' cannot be set by a plan")]),
    Case("redis-rename-command", edit((42, "maxmemory-policy: allkeys-lru", "rename-command: FLUSHALL")),
         [Prefix(f"{L}42: steps/6/redis_config/set/rename-command: 'rename-command' cannot be set by a plan")]),
    Case("redis-key-upper-case", edit((42, "maxmemory-policy", "MaxMemory")),
         [f"{L}42: steps/6/redis_config/set/MaxMemory: 'MaxMemory' is not a Redis config key "
          "(lower-case letters, digits and -, e.g. maxmemory-policy)"]),
    # -- file_swap paths escaping the project (host-level checks: see test_host_level_bad_input) -------------
    Case("swap-source-dotdot", edit((30, "frontend/next.config.optimized.js", "../x")),
         [Prefix(f"{L}30: steps/4/file_swap/source: '../x' must stay inside the project directory")]),
    Case("swap-destination-dotdot-deep", edit((31, "frontend/next.config.js", "frontend/../../x")),
         [Prefix(f"{L}31: steps/4/file_swap/destination: 'frontend/../../x' must stay inside the project directory")]),
    Case("build-context-dotdot", edit((34, "frontend", "../..")),
         [Prefix(f"{L}34: steps/5/image_build/context: '../..' must stay inside the project directory")]),
    Case("build-dockerfile-absolute", edit((35, "Dockerfile.optimized", "/etc/passwd")),
         [Prefix(f"{L}35: steps/5/image_build/dockerfile: '/etc/passwd' ")]),
    Case("swap-destination-absolute", edit((31, "frontend/next.config.js", "/etc/passwd")),
         [Prefix(f"{L}31: steps/4/file_swap/destination: '/etc/passwd' ")]),
    # -- names, enums, bounds ---------------------------------------------------------------------------------
    Case("plan-name", edit((2, "corpus", "Day 1!")),
         [f"{L}2: plan: 'Day 1!' is not a plan name (lower-case letters, digits, - and _, e.g. day1)"]),
    Case("plan-name-list", edit((2, "corpus", "[a]")),
         [f"{L}2: plan: a list is not a plan name (lower-case letters, digits, - and _, e.g. day1)"]),
    Case("hosts-group-name", edit((5, "app_servers", "app servers")),
         [f"{L}5: hosts: 'app servers' is not a group name (an inventory group such as app_servers)"]),
    Case("step-id", edit((16, "health", "Health Check")),
         [f"{L}16: steps/2/id: 'Health Check' is not a step id (lower-case letters, digits, - and _)"]),
    Case("service-name-injection", edit((15, "[app]", '["app; rm -rf /"]')),
         [f"{L}15: steps/1/recreate/services/0: 'app; rm -rf /' is not a service name (a compose service such as app)"]),
    Case("on-failure-enum", edit((59, "rollback", "ignore")),
         [f"{L}59: on_failure: 'ignore' is not one of: rollback, stop"]),
    Case("http-status-999", edit((20, "200", "999")), [f"{L}20: steps/2/check/http/status: must be at most 599, not 999"]),
    Case("http-url-without-scheme", edit((45, '"http://', '"')),
         [f"{L}45: validate/0/http/url: '127.0.0.1:{{{{ host.data.app_port }}}}/api/health' "
          "must be an http:// or https:// URL"]),
    Case("redis-info-url-scheme", edit((56, "service: redis", "url: 'http://x'")),
         [f"{L}56: validate/3/redis_info/url: 'http://x' must be a redis:// or rediss:// URL"]),
    Case("image-path-relative", edit((53, "/app/.next/static", "app/.next")),
         [f"{L}53: validate/2/image_path_size/path: 'app/.next' must be an absolute path inside the image (starting with /)"]),
    Case("header-regex", edit((20, "status: 200", "status: 200\n        headers: {X-A: {matches: '('}}")),
         [f"{L}21: steps/2/check/http/headers/X-A/matches: not a regular expression: "
          "missing ), unterminated subpattern at position 0"]),
]

# Every error of a file is reported, sorted by line (not just the first).
MANY_ERRORS = Case(
    "many-errors-in-one-file",
    edit((3, "1", '"1"'), (10, "1G,", "1Gb,"), (16, "health", "limits"), (25, "30s", "0s"), (59, "rollback", "ignore")),
    [f"{L}3: version: must be an integer, not the string '1' (write 1 without quotes)",
     f"{L}10: steps/0/compose_limits/limits/memory: '1Gb' is not a size {SIZE_HINT}",
     f"{L}16: steps/2/id: duplicate step id 'limits' (also steps/0; ids must be unique)",
     f"{L}25: steps/3/watch/every: '0s' must be greater than zero",
     f"{L}59: on_failure: 'ignore' is not one of: rollback, stop"],
)
CASES.append(MANY_ERRORS)

# These also go through `rollout validate` in a subprocess.
CLI_CASES = {"yaml-bad-indentation", "size-1Gb", "duplicate-nested-key", "tag-python-object", "latin-1-byte",
             "empty-file", "file-over-1MiB", "billion-laughs", "many-errors-in-one-file"}


def matches(got: list[str], expect: list[str]) -> bool:
    return len(got) == len(expect) and all(
        g.startswith(e) if isinstance(e, Prefix) else g == e for g, e in zip(got, expect))


def write_case(root: Path, case: Case) -> Path:
    path = root / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.raw)
    return path


def run_rollout(*args: str, cwd: Path | str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([*ROLLOUT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=case.xfail, strict=False)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


# -- the corpus ------------------------------------------------------------------------------------

def test_corpus_size():
    assert len(CASES) >= 45
    assert sum(1 for c in CASES if not any(isinstance(e, Prefix) for e in c.expect)) >= 15
    assert len({c.id for c in CASES}) == len(CASES)


def test_base_plan_is_valid_and_landmarks_hold(tmp_path):
    lines = BASE.splitlines()
    for n, text in LANDMARKS.items():
        assert lines[n - 1].strip() == text, f"line {n}"
    path = tmp_path / "base.yaml"
    path.write_text(BASE)
    plan = load_plan(path)
    assert {s.kind for s in plan.steps} == {"compose_limits", "recreate", "check", "watch", "file_swap",
                                            "image_build", "redis_config"}
    assert [p.kind for p in plan.validate] == ["http", "stats", "image_path_size", "redis_info"]


# Huge or pathological inputs must be refused early, not chewed on: a hang guard, far above the
# milliseconds a case takes (how long it takes is not a test's business).
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_plan(case: Case, tmp_path):
    path = write_case(tmp_path, case)
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path, display=FILE)
    got = [str(i) for i in caught.value.issues]
    assert matches(got, case.expect), "\n".join(["got:", *got, "expected:", *case.expect])
    for issue in caught.value.issues:  # every issue names the file; all but whole-file ones a line
        assert issue.file == FILE
        assert issue.line is not None or "bytes; a plan is at most" in issue.message
    lines = [i.line or 0 for i in caught.value.issues]
    assert lines == sorted(lines)
    assert str(caught.value) == "\n".join(got)  # the exception text is the same report
    assert caught.value.exit_code == 2  # bad input, nothing changed


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.id in CLI_CASES])
def test_bad_plan_via_cli(case: Case, tmp_path):
    write_case(tmp_path, case)
    result = run_rollout("validate", FILE, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    got = result.stderr.splitlines()
    assert got[-1] == "error: 1 of 1 plan(s) invalid"
    assert matches(got[:-1], case.expect), "\n".join(["got:", *got, "expected:", *case.expect])
    assert "Traceback" not in result.stderr


def test_errors_of_every_phase_are_merged_in_line_order(tmp_path):
    """Schema, template and per-kind checks run in turn; the report is one list, by line."""
    text = edit((3, "1", '"1"'),  # schema
                (10, '"0.75"', '"0"'),  # compose_limits.check_spec
                (16, "health", "limits"),  # duplicate step id
                (19, "host.data", "env"),  # template
                (49, "80", "95"),  # stats.check_spec (a probe)
                (54, "50MB", "50 MB"))  # schema again, last
    path = write_case(tmp_path, Case("phases", text, []))
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path, display=FILE)
    assert [str(i) for i in caught.value.issues] == [
        f"{L}3: version: must be an integer, not the string '1' (write 1 without quotes)",
        f"{L}10: steps/0/compose_limits/limits/cpus: '0' must be greater than zero",
        f"{L}16: steps/2/id: duplicate step id 'limits' (also steps/0; ids must be unique)",
        f"{L}19: steps/2/check/http/url: unsupported template '{{{{ env.app_port }}}}' (use {{{{ host.data.KEY }}}})",
        f"{L}49: validate/1/stats/warn/memory_percent: warn 95 must be below fail 90",
        f"{L}54: validate/2/image_path_size/budget: '50 MB' is not a size {SIZE_HINT}",
    ]


# -- accepted input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    pytest.param("\ufeff" + BASE, id="utf-8-bom"),  # decided: a UTF-8 BOM is accepted (YAML allows it)
    pytest.param(edit((4, "Bad-input corpus base", "!!str Bad-input corpus base")), id="explicit-str-tag"),
    pytest.param(edit((10, '"0.75"', "'0.75'")), id="single-quoted-cpus"),
    pytest.param(edit((4, "Bad-input corpus base", "Café ☕ – déjà vu")), id="utf-8-text"),
    pytest.param(BASE.replace("\n", "\r\n"), id="crlf-line-endings"),
])
def test_accepted_variants(text: str, tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(text, encoding="utf-8")
    plan = load_plan(path)
    assert plan.name == "corpus"


def test_bom_keeps_line_numbers(tmp_path):
    path = write_case(tmp_path, Case("bom", "\ufeff" + edit((3, "1", "0")), []))
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path, display=FILE)
    assert [str(i) for i in caught.value.issues] == [f"{L}3: version: must be at least 1, not 0"]


@pytest.mark.parametrize("path", sorted((REPO / "plans").glob("*.yaml")), ids=lambda p: p.name)
def test_real_plans_validate(path: Path):
    plan = load_plan(path)
    assert plan.name == path.stem
    assert plan.steps


def test_validate_without_arguments_checks_plans_dir():
    result = run_rollout("validate", cwd=REPO)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (REPO / "plans").glob("*.yaml"))
    assert len(names) >= 3
    for name in names:
        assert f"plans/{name}: ok" in result.stdout


def test_validate_without_arguments_reports_every_bad_plan(tmp_path):
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "good.yaml").write_text(BASE)
    (tmp_path / "plans" / "bad.yaml").write_text(edit((25, "30s", "0s")))
    (tmp_path / "plans" / "worse.yaml").write_bytes(b"")
    result = run_rollout("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "plans/good.yaml: ok" in result.stdout
    assert result.stderr.splitlines() == [
        f"{L}25: steps/3/watch/every: '0s' must be greater than zero",
        "plans/worse.yaml:1: the file is empty; a plan needs plan, version, title, hosts and steps",
        "error: 2 of 3 plan(s) invalid",
    ]


def test_validate_missing_files(tmp_path):
    result = run_rollout("validate", "plans/nope.yaml", "nosuchplan", cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr
    assert "plans/nope.yaml: cannot read: No such file or directory" in err
    assert "nosuchplan: no plan named 'nosuchplan'" in err
    assert "error: 2 of 2 plan(s) invalid" in err


# -- host-level bad input: `rollout diff` against a throwaway project (no Docker needed) --------------

HOST_PLAN = """\
plan: {name}
version: 1
title: host-level bad input
hosts: app_servers
steps:
  - id: first
{step}
"""

HOST_CASES = {
    "unknown-service": ("    compose_limits:\n      service: ghost\n      limits: {memory: 1G}",
                        ["no service 'ghost' (services: app, frontend, redis)"]),
    "missing-source": ("    file_swap:\n      source: frontend/nope.js\n      destination: frontend/next.config.js",
                       ["source frontend/nope.js", "does not exist"]),
    "symlink-out": ("    file_swap:\n      source: frontend/next.config.optimized.js\n"
                    "      destination: frontend/etc/hostname",
                    ["destination 'frontend/etc/hostname' is outside the project directory", "resolves to /etc/hostname"]),
    "unknown-host-data": ("    file_swap:\n      source: \"frontend/{{ host.data.nokey }}\"\n"
                          "      destination: frontend/next.config.js",
                          ["template '{{ host.data.nokey }}' in source: the host has no data 'nokey'"]),
}


@pytest.fixture
def project(tmp_path) -> Path:
    """A project directory with the demo compose file and a frontend, and an inventory for it."""
    root = tmp_path / "project"
    (root / "frontend").mkdir(parents=True)
    (root / "docker-compose.production.yml").write_bytes(
        (REPO / "examples" / "medianest" / "docker-compose.production.yml").read_bytes())
    (root / "frontend" / "next.config.js").write_text("module.exports = {}\n")
    (root / "frontend" / "next.config.optimized.js").write_text("module.exports = {compress: true}\n")
    (root / "frontend" / "etc").symlink_to("/etc")
    (tmp_path / "inventory.py").write_text(
        f"app_servers = [('@local', {{'project_dir': {str(root)!r}, "
        "'compose_file': 'docker-compose.production.yml', 'compose_project': 'corpus-never-started'})]\n")
    return root


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("name", list(HOST_CASES))
def test_host_level_bad_input(name: str, project: Path):
    step, fragments = HOST_CASES[name]
    plan = project.parent / "plans" / f"{name.replace('-', '_')}.yaml"
    plan.parent.mkdir(exist_ok=True)
    plan.write_text(HOST_PLAN.format(name=name.replace("-", "_"), step=step))
    assert run_rollout("validate", str(plan), cwd=project.parent).returncode == 0  # only the host can tell
    before = _checksums(project)
    result = run_rollout("diff", str(plan), "-i", "inventory.py", cwd=project.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert _checksums(project) == before
    assert not list(project.rglob("*.backup")) and not list(project.rglob("*.rollout-tmp*"))


def test_host_level_error_names_plan_file_and_line(project: Path):
    step, _ = HOST_CASES["unknown-service"]
    plan = project.parent / "plans" / "ghost.yaml"
    plan.parent.mkdir(exist_ok=True)
    plan.write_text(HOST_PLAN.format(name="ghost", step=step))
    result = run_rollout("diff", "plans/ghost.yaml", "-i", "inventory.py", cwd=project.parent)
    assert result.returncode == 2
    assert "plans/ghost.yaml:8: steps/0/compose_limits/service: " in result.stderr


def test_absolute_path_elsewhere_is_refused_by_validate(project: Path):
    plan = project.parent / "plans" / "abs.yaml"
    plan.parent.mkdir(exist_ok=True)
    plan.write_text(HOST_PLAN.format(name="abs", step="    file_swap:\n      source: frontend/next.config.optimized.js\n"
                                                       "      destination: /etc/hostname"))
    result = run_rollout("validate", "plans/abs.yaml", cwd=project.parent)
    assert result.returncode == 2
    assert ("plans/abs.yaml:9: steps/0/file_swap/destination: '/etc/hostname' is not a project path "
            "(a path relative to the project directory, e.g. frontend/next.config.js)") in result.stderr


# -- inventories --------------------------------------------------------------------------------------

GOOD_DATA = {"project_dir": "/srv/medianest", "compose_file": "docker-compose.production.yml",
             "compose_project": "medianest"}


def _inventory(data: dict) -> str:
    return f"app_servers = [('@local', {data!r})]\n"


INVENTORY_CASES = {
    "missing-file": (None, None, ["inventory file not found"]),
    "python-syntax-error": ("app_servers = [('@local', {'project_dir': '/x'}\n", None,
                            ["cannot load inventory", "SyntaxError", "line 1"]),
    "missing-project_dir": (_inventory({k: v for k, v in GOOD_DATA.items() if k != "project_dir"}), "project_dir",
                            ["host @local: missing host data project_dir"]),
    "missing-compose_file": (_inventory({k: v for k, v in GOOD_DATA.items() if k != "compose_file"}), "compose_file",
                             ["host @local: missing host data compose_file"]),
    "missing-compose_project": (_inventory({k: v for k, v in GOOD_DATA.items() if k != "compose_project"}),
                                "compose_project", ["host @local: missing host data compose_project"]),
    "relative-project_dir": (_inventory({**GOOD_DATA, "project_dir": "srv/medianest"}), "project_dir",
                             ["host @local: project_dir must be an absolute path"]),
    "no-such-group": (f"web = [('@local', {GOOD_DATA!r})]\n", "hosts", ["no group 'app_servers'"]),
    "empty-inventory": ("", "hosts", ["no group 'app_servers'"]),
}
INVENTORY_BROKEN = {  # the inventory's own code fails: today a traceback and exit 1
    "import-error": ("import nosuchmodule_for_rollout\n", ["cannot load inventory", "nosuchmodule_for_rollout"]),
    "raises": ("raise RuntimeError('inventory exploded')\n", ["cannot load inventory", "inventory exploded"]),
}


def _write_inventory(tmp_path: Path, text: str | None) -> Path:
    path = tmp_path / "bad_inventory.py"
    if text is not None:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", list(INVENTORY_CASES))
def test_bad_inventory(name: str, tmp_path):
    text, key, fragments = INVENTORY_CASES[name]
    path = _write_inventory(tmp_path, text)
    result = run_rollout("diff", "day1", "-i", str(path), cwd=REPO)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr  # names the file
    for fragment in fragments:
        assert fragment in result.stderr
    if key in ("project_dir", "compose_file", "compose_project"):
        # In a child process: importing pyinfra's CLI monkey-patches this one with gevent.
        probe = subprocess.run([sys.executable, "-c", INVENTORY_KEY_PROBE, str(path)],
                               capture_output=True, text=True, timeout=60)
        assert probe.stdout.splitlines() == ["InputError", key], probe.stderr


INVENTORY_KEY_PROBE = """
import sys
from orchestrator.errors import InputError
from orchestrator.inventory import load_inventory
try:
    load_inventory(sys.argv[1])
except InputError as exc:
    assert sys.argv[1] in str(exc), exc
    print("InputError")
    print(exc.key)
"""


@pytest.mark.parametrize("name", list(INVENTORY_BROKEN))
def test_inventory_code_fails(name: str, tmp_path):
    text, fragments = INVENTORY_BROKEN[name]
    path = _write_inventory(tmp_path, text)
    result = run_rollout("diff", "day1", "-i", str(path), cwd=REPO)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# -- the wheel carries the schema ----------------------------------------------------------------------

def test_wheel_install_validates_from_elsewhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(REPO)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import orchestrator; print(orchestrator.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(venv) in site, "installed as a copy in the venv, not linked to the source tree"
    good = subprocess.run([str(venv / "bin" / "rollout"), "validate", str(REPO / "plans" / "day1.yaml")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "day1.yaml: ok" in good.stdout
    (tmp_path / "bad.yaml").write_text(edit((10, "1G,", "1Gb,")))
    bad = subprocess.run([str(venv / "bin" / "rollout"), "validate", "bad.yaml"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bad.returncode == 2
    assert f"bad.yaml:10: steps/0/compose_limits/limits/memory: '1Gb' is not a size {SIZE_HINT}" in bad.stderr
