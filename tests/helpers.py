"""Shared helpers for tests that drive the real `rollout` command."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `rollout` plus the crash hook (ROLLOUT_FAULT=POINT, points named in its docstring); the shipped
# command has no such hook.
ROLLOUT_UNDER_TEST = [sys.executable, str(Path(__file__).resolve().parent / "rollout_under_test.py")]


def rollout(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 240,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run `rollout ARGS` like an operator would (no terminal), through the test entry."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*ROLLOUT_UNDER_TEST, *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout, input=input, stdin=None if input else subprocess.DEVNULL)


def rollout_bg(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*ROLLOUT_UNDER_TEST, *args], cwd=cwd, env={**os.environ, **(env or {})},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(root: Path, skip: tuple[str, ...] = (".rollout",)) -> dict[str, str]:
    """sha256 of every file under root (operator files), for 'nothing changed' checks."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part in skip for part in rel.parts):
            out[str(rel)] = sha256_file(p)
    return out


def write_plan(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def journal_records(project_dir: Path) -> list[list[dict]]:
    """Every run's journal records on a local project, oldest run first."""
    runs = sorted((Path(project_dir) / ".rollout" / "runs").glob("*/journal.jsonl"))
    return [[json.loads(line) for line in p.read_text().splitlines() if line.strip()] for p in runs]


def skip_or_fail(message: str) -> None:
    """A missing prerequisite skips on a developer's machine but fails under CI, where it must exist."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
