"""Day 1 figures on a throwaway demo stack, against baselines measured in the same run.

1. `rollout diff day1` wall time (median of 5) vs `docker-compose config -q` (the
   cheapest compose invocation) on the same project.
2. Automatic rollback: time from the failing probe's verdict to the restored app
   answering healthy, vs a bare `docker-compose up -d --force-recreate app` plus its
   first healthy answer.

Run: .venv/bin/python bench/day1_rollback.py
"""
from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from helpers import rollout  # noqa: E402
from stack import DemoStack  # noqa: E402

from orchestrator.compose import compose_argv  # noqa: E402


def first_healthy(url: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return time.monotonic()
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, DemoStack(Path(tmp)) as stack:
        stack.up()
        inv = str(stack.inventory_path)
        compose = compose_argv() + ["-p", stack.project_name, "-f", str(stack.compose_path)]

        diff_times, config_times = [], []
        for _ in range(5):
            t = time.monotonic()
            assert rollout("diff", "day1", "-i", inv).returncode == 0
            diff_times.append(time.monotonic() - t)
            t = time.monotonic()
            subprocess.run(compose + ["config", "-q"], cwd=stack.project_dir, check=True, capture_output=True)
            config_times.append(time.monotonic() - t)
        diff_s, config_s = statistics.median(diff_times), statistics.median(config_times)

        # Baseline: bare recreate + first healthy answer.
        bare = []
        for _ in range(3):
            t = time.monotonic()
            subprocess.run(compose + ["up", "-d", "--no-deps", "--force-recreate", "app"], cwd=stack.project_dir,
                           check=True, capture_output=True)
            bare.append(first_healthy(stack.url("/api/health")) - t)
        bare_s = statistics.median(bare)

        # A plan whose heap budget is too small: the health check fails, rollout rolls back.
        plan = Path(tmp) / "tiny-heap.yaml"
        plan.write_text((REPO / "plans/day1.yaml").read_text().replace("--max-old-space-size=384", "--max-old-space-size=64"))
        rollbacks = []
        for _ in range(3):
            result = rollout("apply", str(plan), "-i", inv, "--yes", "--soak", "2s", "--soak-every", "1s")
            assert result.returncode == 1, result.stdout + result.stderr
            stamps = {m.group(2): float(m.group(1)) for m in re.finditer(r"\[\s*([\d.]+)s\] @local: (FAILED|validate http[^\n]*/api/health[^\n]*PASS|verify http[^\n]*/api/health[^\n]*PASS)", result.stdout)}
            failed = next(v for k, v in stamps.items() if k == "FAILED")
            healthy = next(v for k, v in stamps.items() if k.startswith("verify http"))
            rollbacks.append(healthy - failed)
        rollback_s = statistics.median(rollbacks)

    print(f"rollout diff day1            median {diff_s * 1000:7.0f} ms   (compose config -q {config_s * 1000:.0f} ms; ratio {diff_s / config_s:.2f}x)")
    print(f"verdict → restored & healthy median {rollback_s:7.2f} s    (bare force-recreate + first 200: {bare_s:.2f} s; ratio {rollback_s / bare_s:.2f}x)")
    print(f"  samples: rollback {[round(x, 2) for x in rollbacks]}, bare {[round(x, 2) for x in bare]}")


if __name__ == "__main__":
    main()
