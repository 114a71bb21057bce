"""Issue 10.5: saved plans (`rollout diff -o FILE`, `rollout apply FILE`).

Every field is checked before use (a malformed file is exit 2 naming the field), the
inventory a saved plan names is loaded only if its SHA-256 is the saved one (an
inventory is Python that runs), and the drift check runs on each host under its
lock right before it starts.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, rollout

DAY1 = REPO / "plans" / "day1.yaml"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def inventory(tmp_path) -> tuple[Path, Path]:
    """An inventory that leaves a mark when Python runs it."""
    marker = tmp_path / "inventory-ran"
    data = {"project_dir": str(tmp_path / "project"), "compose_file": "docker-compose.yml", "compose_project": "rtsaved",
            "app_port": 1}
    inv = tmp_path / "inv.py"
    inv.write_text(f"open({str(marker)!r}, 'w').close()\napp_servers = [(\"@local\", {data!r})]\n")
    return inv, marker


def saved(inv: Path) -> dict:
    text = DAY1.read_text()
    return {
        "format": "rollout-saved-plan/2", "created": "2026-01-01T00:00:00Z", "by": "test@here",
        "plan": {"name": "day1", "version": 1, "sha256": sha256(text.encode()), "path": str(DAY1), "text": text},
        "inventory": {"path": str(inv), "sha256": sha256(inv.read_bytes())},
        "options": {"soak": None, "soak_every": None},
        "hosts": {"@local": {"fingerprint": "0" * 64, "changes": [
            {"step": "limits", "kind": "file", "target": "/x/docker-compose.yml", "summary": "s",
             "before": "a" * 64, "after": "b" * 64, "diff": "", "mutates": True, "extra": {}}]}},
    }


def edit(doc: dict, path: str, value=KeyError) -> dict:
    """Set (or, with no value, delete) the field at a slash-separated path."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


CASES = [
    ("hosts/@local/fingerprint", KeyError, "hosts/@local/fingerprint: missing"),
    ("hosts/@local/fingerprint", "abc", "hosts/@local/fingerprint: must be 64 lowercase hex digits"),
    ("hosts/@local/changes", {}, "hosts/@local/changes: must be a list, not an object"),
    ("hosts/@local/changes/0", "x", "hosts/@local/changes/0: must be an object, not a string"),
    ("hosts/@local/changes/0/before", KeyError, "hosts/@local/changes/0/before: missing"),
    ("hosts/@local/changes/0/step", 3, "hosts/@local/changes/0/step: must be a string, not an integer"),
    ("hosts/@local", [], "hosts/@local: must be an object, not a list"),
    ("hosts", {}, "hosts: no host"),
    ("hosts", KeyError, "hosts: missing"),
    ("plan", "day1", "plan: must be an object, not a string"),
    ("plan/text", 5, "plan/text: must be a string, not an integer"),
    ("plan/text", "plan: day1\n", "plan/text: does not match plan/sha256"),
    ("plan/version", "1", "plan/version: must be an integer, not a string"),
    ("plan/version", True, "plan/version: must be an integer, not true"),
    ("plan/path", KeyError, "plan/path: missing"),
    ("options", KeyError, "options: missing"),
    ("options/soak", "20s", "options/soak: must be a number, not a string"),
    ("options/soak", -1, "options/soak: must be greater than zero"),
    ("inventory", "inv.py", "inventory: must be an object, not a string"),
    ("inventory/sha256", KeyError, "inventory/sha256: missing"),
    ("inventory/path", None, "inventory/path: must be a string, not null"),
    ("format", "rollout-saved-plan/1", "format: not a saved plan of this version"),
]


@pytest.mark.parametrize("path, value, message", CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES])
def test_a_malformed_saved_plan_is_refused_naming_the_field(path, value, message, inventory, tmp_path):
    inv, marker = inventory
    file = tmp_path / "day1.plan.json"
    file.write_text(json.dumps(edit(saved(inv), path, value)))
    result = rollout("apply", str(file), "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {file}: {message}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()  # the inventory's code never ran


def test_the_saved_inventory_is_loaded_only_if_its_sha256_matches(inventory, tmp_path):
    inv, marker = inventory
    file = tmp_path / "day1.plan.json"
    file.write_text(json.dumps(saved(inv)))
    inv.write_text(inv.read_text() + "# changed after the plan was saved\n")
    refused = rollout("apply", str(file), "--yes")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{file}: inventory/sha256: {inv} has changed since the plan was saved" in refused.stderr
    assert "pass it with -i" in refused.stderr
    assert not marker.exists()
    # The same file with the checksum it has now: loaded (it runs; what follows fails on this empty host).
    file.write_text(json.dumps(edit(saved(inv), "inventory/sha256", sha256(inv.read_bytes()))))
    loaded = rollout("apply", str(file), "--yes")
    assert marker.exists() and loaded.returncode != 0
    assert "Traceback" not in loaded.stdout + loaded.stderr


# -- the drift check runs under the host's lock, right before it starts -----------------
def run_in_pty(args: list[str], answer_after: str, before_answer) -> tuple[int, str]:
    """Run rollout on a terminal; when `answer_after` shows, call `before_answer()` and answer y."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "orchestrator", *args])
    out, answered = b"", False
    deadline = time.monotonic() + 600  # a hang guard
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        if not answered and answer_after.encode() in out:
            before_answer()
            os.write(fd, b"y\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def test_a_host_that_moves_on_while_the_operator_reviews_is_refused_at_its_start(demo_stack, tmp_path):
    inv = str(demo_stack.inventory_path)
    file = tmp_path / "day1.plan.json"
    made = rollout("diff", "day1", "-i", inv, "-o", str(file))
    assert made.returncode == 0, made.stdout + made.stderr
    compose = demo_stack.compose_path

    def hand_edit() -> None:  # after the up-front check passed, before the host starts
        compose.write_text(compose.read_text() + "# hand edit while the diff was reviewed\n")

    code, out = run_in_pty(["apply", str(file), "--soak", "2s", "--soak-every", "1s"], "? [y/N]", hand_edit)
    assert code == 2, out
    assert "@local: moved on since the plan was saved; nothing changed on it" in out
    assert "limits" in out and "live state differs" in out
    assert compose.read_text().endswith("# hand edit while the diff was reviewed\n")
    state = demo_stack.project_dir / ".rollout"
    assert not (state / "lock").exists()
    assert not (state / "runs").exists() or not any((state / "runs").iterdir())  # no run was started
    assert "Traceback" not in out
