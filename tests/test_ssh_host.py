"""A host reached over SSH (a real sshd on 127.0.0.1): files, compose and journal go through pyinfra's SSH connector."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers import rollout, skip_or_fail
from stack import DemoStack, free_ports

GIB = 1024**3


@pytest.fixture
def sshd(tmp_path):
    """An sshd on a free 127.0.0.1 port accepting one generated key for root."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd_bin):
        skip_or_fail("sshd is not installed (scripts/setup.sh installs openssh-server)")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_ports(1)[0]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield {"port": port, "key": str(d / "client_key")}
    proc.terminate()
    proc.wait(timeout=10)


def test_day1_over_ssh(sshd, demo_stack: DemoStack, tmp_path):
    data = {**demo_stack.host_data, "ssh_port": sshd["port"], "ssh_user": "root", "ssh_key": sshd["key"],
            "ssh_strict_host_key_checking": "off", "ssh_known_hosts_file": "/dev/null",
            # the engine of this "remote" host is the local one; reach it directly
            "docker_host": "unix:///var/run/docker.sock"}
    inv = tmp_path / "ssh_inventory.py"
    inv.write_text(f"app_servers = [(\"127.0.0.1\", {data!r})]\n")
    original = demo_stack.compose_path.read_bytes()

    diff = rollout("diff", "day1", "-i", str(inv))
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "== 127.0.0.1: 2 change(s)" in diff.stdout

    applied = rollout("apply", "day1", "-i", str(inv), "--yes", "--soak", "2s", "--soak-every", "1s")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    app = demo_stack.container("app")
    assert app.attrs["HostConfig"]["Memory"] == GIB
    journal = list((demo_stack.project_dir / ".rollout" / "runs").glob("*/journal.jsonl"))
    assert len(journal) == 1 and '"host":"127.0.0.1"' in journal[0].read_text()

    back = rollout("rollback", "day1", "-i", str(inv), "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert demo_stack.compose_path.read_bytes() == original
    assert demo_stack.container("app").attrs["HostConfig"]["Memory"] == 2 * GIB
