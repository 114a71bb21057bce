"""Backups of secret values a step must keep to undo itself (an old password, say).

A secret never goes into the journal or an exception: it is written to an owner-only,
checksummed backup file of the run (`Journal.backup`), and the undo record holds only
the file's path and checksum (a "ref": `{"backup": path, "sha256": digest}`). The file
starts with a salted header line, so the checksum does not fingerprint the secret.
Used by the Redis step; any step that changes a password (Postgres, …) can use it too.
"""
from __future__ import annotations

import hashlib
import secrets
import shlex
from typing import Any, Protocol

from orchestrator.errors import HostError
from orchestrator.hosts import Target

_SECRET_HEADER = b"# rollout secret backup; the value is everything after this line; salt "


class BackupStore(Protocol):
    """What stores a backup: the run's journal."""

    def backup(self, data: bytes) -> tuple[str, str]: ...


def secret_blob(value: str) -> bytes:
    """What a secret's backup file holds: a salted header line, then the value.

    The salt keeps the backup's checksum (in the journal and in EMERGENCY
    output) from fingerprinting the password.
    """
    return _SECRET_HEADER + secrets.token_hex(16).encode() + b"\n" + value.encode()


def store_secret(journal: BackupStore, value: str) -> dict[str, str]:
    """Back `value` up with the run; the ref an undo record keeps instead of the value."""
    path, digest = journal.backup(secret_blob(value))
    return {"backup": path, "sha256": digest}


def read_secret(target: Target, ref: dict[str, Any]) -> str:
    """The secret a ref points to, after checking its backup's checksum."""
    raw = target.read_file(ref["backup"])
    if raw is None or hashlib.sha256(raw).hexdigest() != ref["sha256"]:
        state = "missing" if raw is None else "corrupt (checksum mismatch)"
        raise HostError(f"secret backup {ref['backup']} is {state}", host=target.name)
    return raw.split(b"\n", 1)[1].decode()


def manual_secret(ref: dict[str, Any]) -> str:
    """A shell word that reads a secret from its backup on the host (for manual undo lines)."""
    return f'"$(tail -n +2 {shlex.quote(ref["backup"])})"'
