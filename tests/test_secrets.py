"""Secrets never leak (issue 6 part 5): seed known secrets, run every command, scan everything.

Seeded secrets:
  * compose environment values whose keys look secret: the demo's SESSION_SECRET, and
    API_TOKEN / DB_PASSWORD added by a plan (literal in one plan, in flow style; from the
    inventory's host data in the other, in block style) - so they are in a plan AND written
    into the compose file and the app container;
  * a Redis `requirepass` (from host data; and a literal one) and a redis:// URL password;
  * inventory host-data passwords (`ssh_password` is never used by a plan: it must simply
    never show up).

Every command's stdout and stderr is scanned (validate, diff, diff --json, diff -o, apply of
a saved plan, status, history and their --json, rollback, a failing apply that rolls itself
back, a SIGKILLed apply, the refused apply after it, the rollback after the crash), and so
is every file the tool wrote: everything under `<project_dir>/.rollout/` and the saved
plan. The only files allowed to hold a secret are copies the rollback needs (see SCAN).

Issue 10.2 (secrets by value): secrets under names and in forms that redaction by name missed
(DB_PASS, SIGNING_KEY_B64, X-Api-Key, `--requirepass X` in a command in string and list form,
`redis-cli -a X`, a `PASSWORD: |` block, `export API_TOKEN=`, `?token=`, URL passwords with `/`
and `@`, a probe URL's password and its request headers from host data, a secret inside an
exception's text) are scrubbed by value from every output and every written file.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import stat
from pathlib import Path

import pytest

from helpers import journal_records, rollout

# Values unlike anything else in the outputs, so a hit is a leak and not a coincidence.
SESSION_SECRET = "demo-not-a-real-secret"  # already in examples/medianest's compose file
TPL = {  # reach the plan through {{ host.data.KEY }}
    "api_token": f"tpl-api-token-{secrets.token_hex(8)}",
    "db_password": f"tpl-db-password-{secrets.token_hex(8)}",
    "redis_password": f"tpl-requirepass-{secrets.token_hex(8)}",
    "ssh_password": f"inv-ssh-password-{secrets.token_hex(8)}",
}
LIT = {  # written literally in a plan
    "api_token": f"lit-api-token-{secrets.token_hex(8)}",
    "db_password": f"lit-db-password-{secrets.token_hex(8)}",
    "requirepass": f"lit-requirepass-{secrets.token_hex(8)}",
}
SECRETS = [SESSION_SECRET, *TPL.values(), *LIT.values()]

TEMPLATED = """\
plan: sectpl
version: 1
title: secrets from the inventory
hosts: app_servers
steps:
  - id: env
    compose_limits:
      service: app
      environment:
        API_TOKEN: "{{ host.data.api_token }}"
        DB_PASSWORD: "{{ host.data.db_password }}"
  - id: recreate-app
    recreate: {services: [app]}
  - id: redis
    redis_config:
      service: redis
      persist: live-only  # a password is never written into the compose file
      set:
        maxmemory-policy: allkeys-lru
        requirepass: "{{ host.data.redis_password }}"
validate:
  - http: {url: "http://127.0.0.1:{{ host.data.app_port }}/api/health", status: 200}
  - redis_info: {service: redis, password: "{{ host.data.redis_password }}", metric: loading, bound: {eq: 0}}
"""
REDIS_STEP = 2  # the crash point: right after the redis step is done (requirepass set)

LITERAL = f"""\
plan: seclit
version: 1
title: literal secrets that fail a check
hosts: app_servers
steps:
  - id: env
    compose_limits: {{service: app, environment: {{API_TOKEN: "{LIT['api_token']}", DB_PASSWORD: '{LIT['db_password']}'}}}}
  - id: redis
    redis_config:
      service: redis
      persist: live-only
      set:
        maxmemory-policy: allkeys-lru
        requirepass: "{LIT['requirepass']}"
  - id: too-strict
    check:
      redis_info:
        url: "redis://:{LIT['requirepass']}@127.0.0.1:{{{{ host.data.redis_port }}}}"
        metric: used_memory
        bound: {{lt: 1}}
        retry: {{consecutive: 1}}
validate:
  - redis_info: {{service: redis, password: "{LIT['requirepass']}", metric: loading, bound: {{eq: 0}}, retry: {{consecutive: 2, interval: 200ms}}}}
"""


def forms(secret: str) -> list[str]:
    """The secret and the encodings a careless tool would write it in."""
    return [secret, base64.b64encode(secret.encode()).decode(), hashlib.sha256(secret.encode()).hexdigest()]


NEEDLES = [form for s in SECRETS for form in forms(s)]


def leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def is_owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_no_secret_in_any_output_or_written_file(demo_stack, tmp_path):
    stack = demo_stack
    inv = tmp_path / "inventory.py"
    inv.write_text(f"app_servers = [('@local', {({**stack.host_data, **TPL})!r})]\n")
    tpl = tmp_path / "sectpl.yaml"
    tpl.write_text(TEMPLATED)
    lit = tmp_path / "seclit.yaml"
    lit.write_text(LITERAL)
    saved = tmp_path / "sectpl.plan.json"
    refused = tmp_path / "seclit.plan.json"
    outputs: list[tuple[str, str]] = []

    def run(*args: str, code: int = 0, env: dict | None = None) -> str:
        result = rollout(*args, env={"NO_COLOR": "1", **(env or {})})
        text = result.stdout + result.stderr
        outputs.append((" ".join(args), text))
        assert result.returncode == code, f"rollout {' '.join(args)}: exit {result.returncode}\n{text}"
        assert "Traceback" not in text, text
        return text

    # -- read-only commands ---------------------------------------------------------------
    run("validate", str(tpl), str(lit))
    out = run("diff", str(tpl), "-i", str(inv))
    assert "API_TOKEN: ********" in out and "requirepass: (empty) → ******** (secret)" in out
    run("diff", str(tpl), "-i", str(inv), "--json")
    run("diff", str(tpl), "-i", str(inv), "-o", str(saved))
    out = run("diff", str(lit), "-i", str(inv))
    assert "API_TOKEN: ********" in out and "DB_PASSWORD: ********" in out, out
    run("diff", str(lit), "-i", str(inv), "--json")
    # A saved plan carries the plan's text: one with literal secrets is refused.
    out = run("diff", str(lit), "-i", str(inv), "-o", str(refused), code=2)
    assert "holds a literal secret value" in out
    assert not refused.exists()

    # -- a successful apply of the saved plan; what is applied, and a no-op diff -----------
    run("apply", str(saved), "--yes")
    compose = stack.compose_path.read_text()
    assert TPL["api_token"] in compose and TPL["db_password"] in compose  # the seeding really happened
    env = stack.container("app").attrs["Config"]["Env"]
    assert f"API_TOKEN={TPL['api_token']}" in env
    code, reply = stack.container("redis").exec_run(["redis-cli", "--no-auth-warning", "CONFIG", "GET", "requirepass"],
                                                    environment={"REDISCLI_AUTH": TPL["redis_password"]})
    assert code == 0 and reply.decode().split("\n")[1] == TPL["redis_password"]
    for args in (("status",), ("status", "--json"), ("history",), ("history", "--json")):
        run(*args, "-i", str(inv))
    out = run("diff", str(tpl), "-i", str(inv))
    assert "requirepass already ********" in out, out
    run("rollback", str(tpl), "-i", str(inv), "--yes")

    # -- literal secrets, a failing check: the run rolls itself back -----------------------
    out = run("apply", str(lit), "-i", str(inv), "--yes", code=1)
    assert "rolled back and verified" in out, out
    failed = [r for r in journal_records(stack.project_dir)[-1] if r["t"] == "failed"]
    assert failed and "used_memory" in failed[0]["reason"]  # the exception text is journaled, without secrets

    # -- SIGKILL with requirepass set, a refused apply, then the rollback --------------------
    run("apply", str(tpl), "-i", str(inv), "--yes", code=-9, env={"ROLLOUT_FAULT": f"apply:done:{REDIS_STEP}"})
    out = run("apply", str(tpl), "-i", str(inv), "--yes", code=4)  # the crashed run's lock is still there (stale)
    assert "STALE" in out and "rollout rollback" in out
    out = run("rollback", str(tpl), "-i", str(inv), "--yes")
    assert "rolled back and verified" in out, out
    run("history", "-i", str(inv))
    run("history", "-i", str(inv), "--json")
    run("status", "-i", str(inv), "--json")
    assert stack.redis_config("requirepass") == {"requirepass": ""}  # restored: no password again
    assert TPL["api_token"] not in stack.compose_path.read_text()

    # -- scan -----------------------------------------------------------------------------------
    found: list[str] = []
    for label, text in outputs:
        found += [f"output of `rollout {label}`: {n[:12]}…" for n in leaks(text)]

    state = stack.project_dir / ".rollout"
    runs = journal_records(stack.project_dir)
    assert len(runs) == 3  # the saved plan, the failing literal plan, the crashed run (the refused apply made none)
    # SCAN: the run backups a rollback needs are the only files under .rollout that may hold a
    # secret. Copies of operator files (the compose file, which already holds SESSION_SECRET
    # and - on a later run - the applied tokens) are byte-for-byte backups of the operator's
    # own file; a Redis secret backup holds an old/new requirepass that the rollback must
    # authenticate with and restore. Both are owner-only, and only a journal undo record
    # points at them: anything else in backups/ is scanned like every other file.
    file_backups, secret_backups = set(), set()
    for records in runs:
        for record in records:
            if record["t"] != "undo":
                continue
            undo = record["undo"]
            if "path" in undo and "backup" in undo:
                file_backups.add(Path(undo["backup"]))
            for entry in undo.get("keys", []):
                for ref in (entry.get("old"), entry.get("new")):
                    if isinstance(ref, dict):
                        secret_backups.add(Path(ref["backup"]))
            if undo.get("auth"):
                secret_backups.add(Path(undo["auth"]["backup"]))
    assert file_backups and secret_backups
    scanned = [saved]
    for path in sorted(state.rglob("*")):
        if not path.is_file():
            continue
        if path in file_backups or path in secret_backups:
            assert is_owner_only(path), f"{path} holds a secret and is not owner-only"
            if path in file_backups:
                assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name  # an exact copy
            continue
        scanned.append(path)
    for path in scanned:
        found += [f"{path}: {n[:12]}…" for n in leaks(path.read_text("utf-8", "replace"))]
    # The compose file's operator-visible backup is a copy of the operator's own file.
    backup = stack.project_dir / (stack.compose_path.name + ".backup")
    assert backup.exists() and stat.S_IMODE(backup.stat().st_mode) & ~stat.S_IMODE(stack.compose_path.stat().st_mode) == 0
    assert not [p for p in tmp_path.rglob("*.rollout-tmp*")]

    print(f"\nsecrets: {len(SECRETS)} seeded ({len(NEEDLES)} needles with encodings); scanned {len(outputs)} "
          f"outputs and {len(scanned)} files ({len(file_backups)} file backups and {len(secret_backups)} "
          f"Redis secret backups exempt, owner-only); secrets found: {len(found)}")
    assert found == [], "\n".join(found)


def test_redaction_of_plan_lines():
    """The plan copy, saved plans and diffs redact block, flow and URL forms alike."""
    from orchestrator.diff import redact_text

    text = "\n".join([
        "        API_TOKEN: tok-1",
        "    compose_limits: {service: app, environment: {API_TOKEN: \"tok-2\", NODE_OPTIONS: '--x'}}",
        "      set: {requirepass: 'tok-3', maxmemory-policy: allkeys-lru}",
        "  - redis_info: {service: redis, password: tok-4, metric: loading}",
        "        url: \"redis://:tok-5@127.0.0.1:6379\"",
        "        url: redis://default:tok-6@127.0.0.1:6379/0",
        "        url: rediss://tok-7@cache:6380",
        "  - redis_info: {service: redis, password: \"{{ host.data.redis_password }}\"}",
        "      - \"SESSION_SECRET=tok-8\"",
        "  - http: {url: \"http://127.0.0.1:{{ host.data.app_port }}/api/health\", status: 200}",
    ])
    redacted = redact_text(text)
    assert not [f"tok-{i}" for i in range(1, 9) if f"tok-{i}" in redacted], redacted
    assert "NODE_OPTIONS: '--x'" in redacted and "maxmemory-policy: allkeys-lru" in redacted
    assert 'password: "{{ host.data.redis_password }}"' in redacted  # a reference, not the secret
    assert redacted.splitlines()[-1] == text.splitlines()[-1]


# -- issue 10.2: secrets by value, under names and in forms the name regex missed ----------------

def _s(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}"


BYVAL = {  # each in a form or under a name that redaction by name alone let through
    "db_pass": _s("compose-db-pass"),  # DB_PASS in the compose file
    "signing_key": base64.b64encode(secrets.token_bytes(12)).decode(),  # SIGNING_KEY_B64
    "requirepass_str": _s("cmd-string-requirepass"),  # command: redis-server --requirepass X
    "requirepass_list": _s("cmd-list-requirepass"),  # command: ["redis-server", "--requirepass", "X"]
    "masterauth_block": _s("cmd-block-masterauth"),  # command: (block list) - --masterauth / - X
    "redis_cli_a": _s("healthcheck-redis-cli-a"),  # redis-cli -a X ping
    "block_1": _s("block-scalar-line-one"),  # PASSWORD: |
    "block_2": _s("block-scalar-line-two"),
    "x_api_key_file": _s("x-api-key-in-file"),  # X-Api-Key: X
    "export_token": _s("export-api-token"),  # export API_TOKEN=X
    "list_db_pass": _s("env-list-db-pass"),  # - DB_PASS=X
    "url_slash_at": f"url/pass@word-{secrets.token_hex(6)}",  # https://ops:url/pass@word@host
    "url_query": _s("url-query-token"),  # ?token=X
}
HOST = {  # inventory host data, reaching the plan through {{ host.data.KEY }}
    "pw": f"probe-pw@{secrets.token_hex(6)}",  # a probe URL's password (with an @), under a harmless name
    "query_token": _s("probe-query-token"),  # ?token= of probe URLs
    "bearer": _s("probe-bearer-token"),  # Authorization: Bearer X (request_headers)
    "x_api_key": _s("probe-x-api-key"),  # X-Api-Key: X (request_headers)
    "db_pass": _s("inventory-db-pass"),  # a name the old regex missed, reaches an error message
    "signing_key_b64": _s("inventory-signing-key"),  # never used by a plan
    "ssh_password": _s("inventory-ssh-password"),  # never used by a plan
}
BYVAL_SECRETS = [*BYVAL.values(), *HOST.values()]

LIVE_SIDECAR = f"""\
services:
  cache:
    command: redis-server --requirepass {BYVAL['requirepass_str']} --appendonly no
    healthcheck:
      test: ["CMD", "redis-cli", "-a", "{BYVAL['redis_cli_a']}", "ping"]
    environment:
      PASSWORD: |
        {BYVAL['block_1']}
        {BYVAL['block_2']}
      X-Api-Key: {BYVAL['x_api_key_file']}
"""
PLANNED_SIDECAR = f"""\
services:
  cache:
    command: ["redis-server", "--requirepass", "{BYVAL['requirepass_list']}"]
  worker:
    command:
      - redis-server
      - --masterauth
      - {BYVAL['masterauth_block']}
    entrypoint: sh -c "export API_TOKEN={BYVAL['export_token']} && exec worker"
    environment:
      - DB_PASS={BYVAL['list_db_pass']}
    labels:
      feed: "https://ops:{BYVAL['url_slash_at']}@127.0.0.1:9/feed?token={BYVAL['url_query']}&x=1"
"""
PROBE = """\
  - http:
      url: "http://ops:{{ host.data.pw }}@127.0.0.1:{{ host.data.app_port }}/api/health?token={{ host.data.query_token }}"
      status: 200
      request_headers:
        Authorization: "Bearer {{ host.data.bearer }}"
        X-Api-Key: "{{ host.data.x_api_key }}"
      retry: {consecutive: 5, interval: 1s}
"""
BYVAL_PLAN = """\
plan: secval
version: 1
title: secrets by value
hosts: app_servers
steps:
  - id: env
    compose_limits: {service: app, environment: {FEATURE_FLAG: "on"}}
  - id: sidecar
    file_swap: {source: ops/sidecar.next.yml, destination: ops/sidecar.yml}
  - id: recreate-app
    recreate: {services: [app]}
validate:
""" + PROBE
FAILING_PLAN = """\
plan: secfail
version: 1
title: a check that cannot connect, with secrets in its URL
hosts: app_servers
steps:
  - id: env
    compose_limits: {service: app, environment: {FEATURE_FLAG: "on"}}
  - id: unreachable
    check:
      http:
        url: "http://127.0.0.1:{{ host.data.closed_port }}/x?token={{ host.data.query_token }}&api_key={{ host.data.db_pass }}"
        status: 200
        retry: {consecutive: 1}
validate:
""" + PROBE


def test_secrets_by_value_never_reach_an_output_or_a_written_file(demo_stack, tmp_path):
    """Secrets under names and in forms redaction by name missed (compose commands in string and
    list form, a block scalar, DB_PASS, SIGNING_KEY_B64, X-Api-Key, export API_TOKEN=, ?token=, URL
    passwords with / and @, a probe URL's password and request headers from host data, a secret in
    an exception's text) are scrubbed by value from every output and every file the tool writes."""
    from stack import free_ports

    stack = demo_stack
    compose = stack.compose_path.read_text()
    compose = compose.replace(f"      SESSION_SECRET: {SESSION_SECRET}\n", f"      SESSION_SECRET: {SESSION_SECRET}\n"
                              f"      DB_PASS: {BYVAL['db_pass']}\n      SIGNING_KEY_B64: {BYVAL['signing_key']}\n")
    assert BYVAL["db_pass"] in compose
    stack.compose_path.write_text(compose)
    ops = stack.project_dir / "ops"
    ops.mkdir()
    (ops / "sidecar.yml").write_text(LIVE_SIDECAR)
    (ops / "sidecar.next.yml").write_text(PLANNED_SIDECAR)
    for path in (stack.compose_path, ops / "sidecar.yml", ops / "sidecar.next.yml"):
        path.chmod(0o600)
    inv = tmp_path / "inventory.py"
    inv.write_text(f"app_servers = [('@local', {({**stack.host_data, **HOST, 'closed_port': free_ports(1)[0]})!r})]\n")
    plan, failing, saved = tmp_path / "secval.yaml", tmp_path / "secfail.yaml", tmp_path / "secval.plan.json"
    plan.write_text(BYVAL_PLAN)
    failing.write_text(FAILING_PLAN)
    outputs: list[tuple[str, str]] = []

    def run(*args: str, code: int = 0) -> str:
        result = rollout(*args, env={"NO_COLOR": "1"})
        text = result.stdout + result.stderr
        outputs.append((" ".join(args), text))
        assert result.returncode == code, f"rollout {' '.join(args)}: exit {result.returncode}\n{text}"
        assert "Traceback" not in text, text
        return text

    out = run("diff", str(plan), "-i", str(inv))
    # redacted by name where the name is next to it, in each form
    for shown in ("DB_PASS: ********", "SIGNING_KEY_B64: ********", "--requirepass ******** --appendonly no",
                  '"--requirepass", "********"]', "+      - ********", '"redis-cli", "-a", "********", "ping"',
                  "X-Api-Key: ********", "export API_TOKEN=******** && exec", "- DB_PASS=********",
                  "https://ops:********@127.0.0.1:9/feed?token=********&x=1",
                  "Authorization: ********", "X-Api-Key: ********"):
        assert shown in out, f"{shown!r} not in\n{out}"
    assert "http://ops:********@127.0.0.1" in out and "?token=********" in out, out
    run("diff", str(plan), "-i", str(inv), "--json")
    run("diff", str(plan), "-i", str(inv), "-o", str(saved))
    assert saved.exists() and is_owner_only(saved)
    run("apply", str(saved), "--yes")
    assert (ops / "sidecar.yml").read_text() == PLANNED_SIDECAR  # the secrets really were applied
    assert f"DB_PASS={BYVAL['db_pass']}" in stack.container("app").attrs["Config"]["Env"]
    for args in (("status",), ("status", "--json"), ("history",), ("history", "--json")):
        run(*args, "-i", str(inv))
    run("rollback", str(plan), "-i", str(inv), "--yes")
    assert (ops / "sidecar.yml").read_text() == LIVE_SIDECAR
    # An exception's text (requests' ConnectionError names the URL with its query) carries secrets:
    out = run("apply", str(failing), "-i", str(inv), "--yes", code=1)
    assert "rolled back and verified" in out and "token=********" in out, out
    run("history", "-i", str(inv))
    run("history", "-i", str(inv), "--json")

    needles = [form for s in BYVAL_SECRETS for form in forms(s)]
    found = [f"output of `rollout {label}`: {n[:16]}…" for label, text in outputs for n in needles if n in text]
    runs = journal_records(stack.project_dir)
    assert len(runs) == 2
    backups = {Path(r["undo"]["backup"]) for records in runs for r in records
               if r["t"] == "undo" and "backup" in r["undo"]}
    assert backups
    failed = [r for r in runs[-1] if r["t"] == "failed"]
    assert failed and "ConnectionError" in failed[0]["reason"] and "token=********" in failed[0]["reason"], failed
    scanned = [saved]
    for path in sorted((stack.project_dir / ".rollout").rglob("*")):
        if path.is_file() and path not in backups:  # byte-for-byte copies of the operator's files
            scanned.append(path)
    for path in backups:
        assert is_owner_only(path) and hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    for original in (stack.compose_path, ops / "sidecar.yml"):  # the operator's copies: as readable as the file
        backup = original.with_name(original.name + ".backup")
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600, f"{backup}: {oct(backup.stat().st_mode)}"
    assert any(p.name == "plan.yaml" for p in scanned) and any(p.name == "journal.jsonl" for p in scanned)
    for path in scanned:
        found += [f"{path}: {n[:16]}…" for n in needles if n in path.read_text("utf-8", "replace")]
    print(f"\nsecrets by value: {len(BYVAL_SECRETS)} seeded; scanned {len(outputs)} outputs and {len(scanned)} "
          f"files ({len(backups)} byte-for-byte backups exempt); secrets found: {len(found)}")
    assert found == [], "\n".join(found)


@pytest.fixture
def registry():
    from orchestrator import known_secrets

    known_secrets.clear()
    yield known_secrets
    known_secrets.clear()


def test_redaction_by_name_of_the_forms_the_old_pattern_missed(registry):
    """Each form is hidden by name alone (nothing registered), and its value is collected."""
    from orchestrator.diff import redact_text

    for text in (LIVE_SIDECAR, PLANNED_SIDECAR,
                 f"      DB_PASS: {BYVAL['db_pass']}\n      SIGNING_KEY_B64: {BYVAL['signing_key']}\n"):
        redacted = redact_text(text)
        leaked = [s for s in BYVAL.values() if s in redacted]
        assert leaked == [], redacted
        assert registry.values() == set()  # by name alone
    assert "      PASSWORD: |\n        ********\n        ********\n      X-Api-Key: ********" in redact_text(LIVE_SIDECAR)
    for text in (LIVE_SIDECAR, PLANNED_SIDECAR, f"DB_PASS: {BYVAL['db_pass']}\nSIGNING_KEY_B64: {BYVAL['signing_key']}"):
        registry.harvest_file(text)
    missing = [k for k, v in BYVAL.items() if v not in registry.values()]
    assert missing == [], missing
    # settings stay visible: keyspace is not KEY, --no-auth-warning takes no value, templates are references
    kept = ["notify-keyspace-events: Ex", "tcp-keepalive: 300", "redis-cli --no-auth-warning CONFIG GET x",
            'Authorization: "Bearer {{ host.data.bearer }}"', "url: http://ops:{{host.data.pw}}@127.0.0.1/x"]
    assert redact_text("\n".join(kept)) == "\n".join(kept)


def test_scrub_by_value_keeps_json_valid_and_ignores_trivial_values(registry):
    import json

    tricky = 'quo"te\\back\nslash-' + secrets.token_hex(4)
    for value in (tricky, "true", "3600", "abc", "null", "", None, "{{ host.data.x }}"):
        registry.add(value)
    assert registry.values() == {tricky, *tricky.splitlines()}
    doc = {"a": f"x{tricky}y", "b": ["\n" + tricky, f'"{tricky}"'], "mutates": True, "soak": 3600}
    scrubbed = registry.scrub(json.dumps(doc, indent=2))
    assert json.loads(scrubbed)["mutates"] is True and json.loads(scrubbed)["soak"] == 3600
    assert all(line not in scrubbed and json.dumps(line)[1:-1] not in scrubbed for line in tricky.splitlines())
    assert registry.scrub_obj(doc)["a"] == "x********y"
    # a journal record: free text scrubbed, the fields the rollback reads kept as they are
    record = registry.scrub_record({"reason": f"failed: {tricky}", "undo": {"path": "/p", "sha256": "0" * 64},
                                    "id": "env", "kind": "compose_limits"})
    assert record == {"reason": "failed: ********", "undo": {"path": "/p", "sha256": "0" * 64},
                      "id": "env", "kind": "compose_limits"}
