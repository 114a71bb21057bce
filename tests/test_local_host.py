"""`@local` without pyinfra: the same inventory, the same command results, nothing heavy imported.

Our inventory loader and `LocalHost` stand in for pyinfra's on a local-only run; these
tests hold them to pyinfra's own answers (pyinfra runs in a child process, where its
gevent monkey-patch cannot touch this one).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from orchestrator.hosts import Connection
from orchestrator.inventory import load_inventory

from helpers import REPO

INVENTORY = '''
import os
_private = [("@local", {"project_dir": "/nope"})]
NOT_A_GROUP = 42
names = ["just", "strings"]   # not in `all`: pyinfra drops them, so they need no host data
all = (["@local", "web-2"], {"compose_project": "from-all", "shared": "all"})
web = (
    [("@local", {"project_dir": "/srv/a", "compose_file": "c.yml", "app_port": 1}), "web-2"],
    {"shared": "web", "compose_project": "from-web"},
)
db = [("web-2", {"project_dir": "/srv/b", "compose_file": "d.yml", "shared": "host"})]
'''
GROUP_DATA = 'compose_project = "from-group-data"\nregion = "eu"\n'

PYINFRA_VIEW = """
import json, sys
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory_from_files
with ctx_state.use(State(Inventory(([], {})), Config())):
    inv = make_inventory_from_files(sys.argv[1])
print(json.dumps({
    "hosts": {h.name: {k: v for k, v in h.data.dict().items() if not k.startswith("_")} for h in inv},
    "groups": {g: sorted(h.name for h in hosts) for g, hosts in inv.groups.items() if not g.startswith("@")},
}, sort_keys=True, default=str))
"""


def _pyinfra_view(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PYINFRA_VIEW, str(path)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out)


def test_inventory_reads_as_pyinfra_reads_it(tmp_path):
    path = tmp_path / "fleet.py"
    path.write_text(INVENTORY)
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "db.py").write_text(GROUP_DATA)
    theirs = _pyinfra_view(path)
    ours = load_inventory(path)
    assert ours.host_data == theirs["hosts"]
    assert {g: sorted(n) for g, n in ours.groups.items() if g != "all"} == theirs["groups"]
    assert ours.groups["all"] == ["@local", "web-2"]
    assert ours.host_data["web-2"]["compose_project"] == "from-group-data"  # group data beats `all`
    assert ours.host_data["web-2"]["shared"] == "host"  # host data beats groups
    assert ours.host_data["@local"]["shared"] == "web"


COMMANDS = [
    "printf 'a\\nb\\n\\n'",          # trailing blank line kept as pyinfra keeps it
    "printf 'no newline'",
    "echo out; echo err >&2; exit 3",
    "printf ''",
    "printf 'caf\\303\\251\\n'",
]

PYINFRA_LOCAL = """
import json, sys
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
state = State(Inventory((["@local"], {})), Config())
connect_all(state)
host = state.inventory.get_host("@local")
out = []
for cmd in json.loads(sys.argv[1]):
    ok, o = host.run_shell_command(cmd)
    out.append([ok, o.stdout, o.stderr])
print(json.dumps(out))
"""


def test_local_host_answers_as_pyinfra_local_does(tmp_path):
    theirs = json.loads(subprocess.run([sys.executable, "-c", PYINFRA_LOCAL, json.dumps(COMMANDS)],
                                       capture_output=True, text=True, timeout=120, check=True).stdout)
    inv_path = tmp_path / "inv.py"
    inv_path.write_text(f"app_servers = [('@local', {{'project_dir': {str(tmp_path)!r}, "
                        "'compose_file': 'c.yml', 'compose_project': 'p'})]\n")
    with Connection(load_inventory(inv_path), ["@local"]) as (target,):
        ours = [[r.ok, r.stdout, r.stderr] for r in (target.run(c) for c in COMMANDS)]
        data = bytes(range(256)) * 3
        target.write_file_atomic(str(tmp_path / "blob"), data)
        assert target.read_file(str(tmp_path / "blob")) == data
        assert target.read_file(str(tmp_path / "missing")) is None
    assert ours == theirs


SYS_MODULES_AFTER_DIFF = """
import sys
from orchestrator.cli import main
try:
    main(["diff", "day1", "-i", sys.argv[1]])
except SystemExit as exc:
    code = exc.code
print("EXIT", code)
print("LOADED", " ".join(sorted(m for m in {"pyinfra", "pyinfra_cli", "gevent", "paramiko"} if sys.modules.get(m))))
"""


def test_diff_of_a_local_stack_imports_no_pyinfra_gevent_or_paramiko(demo_stack):
    proc = subprocess.run([sys.executable, "-c", SYS_MODULES_AFTER_DIFF, str(demo_stack.inventory_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert "EXIT 0" in proc.stdout, proc.stdout + proc.stderr
    assert "memory" in proc.stdout  # the diff really read the stack
    assert proc.stdout.strip().splitlines()[-1] == "LOADED", proc.stdout[-500:]
