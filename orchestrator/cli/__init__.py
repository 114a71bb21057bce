"""The `rollout` command line (click): `main` is the console script.

app.py holds the group and what every command shares (it is imported first: it takes
Ctrl-C over before the rest loads); each other module registers its commands on it.
"""
from orchestrator.cli.app import main
from orchestrator.cli import changes, demo_commands, state  # noqa: E402,F401 — registers the commands

__all__ = ["main"]
