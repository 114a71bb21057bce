#!/usr/bin/env python
"""Day 2 figures on a throwaway copy of the demo stack (its own project, ports and tags).

1. Rollback time: apply plans/day2.yaml with one extra validate probe that only the
   old bundle passes (a source map the optimized build no longer ships), so the run
   fails *after* `frontend` was recreated on the new image. Measured from the failing
   verdict (the FAIL line of `rollout apply`) to the frontend container running the
   old image and (a) answering 200 on / and (b) being reported healthy by Docker.
2. A bare `compose up -d --force-recreate frontend`, to the same two points (compose v1
   then recreates app and redis too), and the same with `--no-deps` (frontend only, as
   the rollback's recreate does).
3. The size of /app/.next/static in the image before and after day2.

    .venv/bin/python bench/day2_rollback.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker
import requests
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from stack import DemoStack  # noqa: E402

from orchestrator.compose import compose_argv  # noqa: E402

MARKER = "/_next/static/chunks/framework-5f4b6a1c2e3d4f50.js.map"  # only with productionBrowserSourceMaps


def plan_text(stack: DemoStack) -> str:
    text = (REPO / "plans" / "day2.yaml").read_text()
    # the stack has a frontend repository of its own: keep_as: stable stays private to it
    probe = (
        "  - http:\n"
        f'      url: "http://127.0.0.1:{{{{ host.data.frontend_port }}}}{MARKER}"\n'
        "      status: 200\n"
        "      retry: {consecutive: 1}\n"
    )
    assert "\non_failure: rollback" in text
    return text.replace("\non_failure: rollback", "\n" + probe + "on_failure: rollback")


def size_of(client: docker.DockerClient, image: str, path: str = "/app/.next/static") -> int:
    out = client.containers.run(image, ["-sb", path], entrypoint=["du"], remove=True, network_disabled=True)
    return int(out.split()[0])


def frontend(client: docker.DockerClient, stack: DemoStack):
    found = client.containers.list(filters={"label": [f"com.docker.compose.project={stack.project_name}",
                                                      "com.docker.compose.service=frontend"]})
    return found[0] if found else None


def watch_frontend(client, stack: DemoStack, image_id: str, not_container: str | None, timeout: float = 60) -> dict[str, float]:
    """Monotonic times at which a frontend container of `image_id` (other than `not_container`)
    first answered 200 on / and was first reported healthy."""
    seen: dict[str, float] = {}

    def poll() -> bool:
        c = frontend(client, stack)
        if c is None or c.id == not_container or c.attrs["Image"] != image_id:
            return False
        if "http" not in seen:
            try:
                if requests.get(stack.url("/", "frontend"), timeout=1).status_code == 200:
                    seen["http"] = time.monotonic()
            except requests.RequestException:
                pass
        if (c.attrs["State"].get("Health") or {}).get("Status") == "healthy":
            seen["healthy"] = time.monotonic()
        return "http" in seen and "healthy" in seen

    Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.05), retry=retry_if_result(lambda ok: not ok),
             retry_error_callback=lambda state: False)(poll)
    return seen


def rollback_once(client, stack: DemoStack, plan: Path, old_id: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "apply", str(plan), "-i", str(stack.inventory_path),
                             "--yes"], cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    failed_at, result, lines = None, {}, []
    watcher = None
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if failed_at is None and "validate http" in line and "→ FAIL" in line:
            failed_at = time.monotonic()
            new_container = frontend(client, stack).id

            def run() -> None:
                result.update(watch_frontend(client, stack, old_id, new_container))
            watcher = threading.Thread(target=run)
            watcher.start()
    proc.wait()
    if watcher:
        watcher.join()
    output = "".join(lines)
    if proc.returncode != 1 or failed_at is None or len(result) != 2:
        raise SystemExit(f"unexpected run (exit {proc.returncode}):\n{output}")
    reported = next((ln for ln in lines if "rolled back and verified" in ln), "").strip()
    reported = "rolled back and verified" + reported.rsplit("rolled back and verified", 1)[-1] if reported else ""
    return {"http": result["http"] - failed_at, "healthy": result["healthy"] - failed_at, "reported": reported}


def bare_recreate_once(client, stack: DemoStack, image_id: str, no_deps: bool) -> dict[str, float]:
    """`compose up -d --force-recreate frontend`; without --no-deps compose v1 also recreates
    frontend's dependencies (app, redis), which is what the plain command does."""
    before = frontend(client, stack).id
    argv = compose_argv() + ["-p", stack.project_name, "-f", str(stack.compose_path), "up", "-d",
                             *(["--no-deps"] if no_deps else []), "--force-recreate", "frontend"]
    started = time.monotonic()
    subprocess.run(argv, cwd=stack.project_dir, env={**os.environ, **stack.env}, check=True, capture_output=True)
    seen = watch_frontend(client, stack, image_id, before)
    return {"http": seen["http"] - started, "healthy": seen["healthy"] - started}


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="day2-bench-") as tmp, DemoStack(Path(tmp)) as stack:
        stack.up()
        old_id = client.images.get(stack.frontend_image).id
        plan = Path(tmp) / "day2-bench.yaml"
        plan.write_text(plan_text(stack))

        rollbacks = []
        for i in range(args.repeat):
            rollbacks.append(rollback_once(client, stack, plan, old_id))
            print(f"rollback run {i + 1}: first 200 {rollbacks[-1]['http']:.2f}s, healthy {rollbacks[-1]['healthy']:.2f}s"
                  f"  ({rollbacks[-1]['reported']})", flush=True)
        bare, only = [], []
        for i in range(args.repeat):
            bare.append(bare_recreate_once(client, stack, old_id, no_deps=False))
            print(f"bare recreate {i + 1}: first 200 {bare[-1]['http']:.2f}s, healthy {bare[-1]['healthy']:.2f}s", flush=True)
            only.append(bare_recreate_once(client, stack, old_id, no_deps=True))
            print(f"bare recreate --no-deps {i + 1}: first 200 {only[-1]['http']:.2f}s, healthy {only[-1]['healthy']:.2f}s",
                  flush=True)

        # Sizes: the old image, and the day2 image (the build is cached from the runs above).
        new_id = client.images.get(f"{stack.frontend_image}").id  # the tag is back on the old image
        plan.write_text((REPO / "plans" / "day2.yaml").read_text())
        done = subprocess.run([sys.executable, "-m", "orchestrator", "apply", str(plan), "-i", str(stack.inventory_path),
                               "--yes"], cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)
        new_id = client.images.get(stack.frontend_image).id
        before, after = size_of(client, old_id), size_of(client, new_id)

    print()
    print(f"{'median of ' + str(args.repeat):<40} {'first 200 on /':>15} {'Docker healthy':>15}")
    print(f"{'rollback (FAIL verdict → old image)':<40} {median(rollbacks, 'http'):>14.2f}s {median(rollbacks, 'healthy'):>14.2f}s")
    for label, rows in (("bare up --force-recreate frontend", bare), ("  same with --no-deps (frontend only)", only)):
        print(f"{label:<40} {median(rows, 'http'):>14.2f}s {median(rows, 'healthy'):>14.2f}s")
    for label, rows in (("ratio rollback / bare", bare), ("ratio rollback / bare --no-deps", only)):
        print(f"{label:<40} {median(rollbacks, 'http') / median(rows, 'http'):>14.2f}x "
              f"{median(rollbacks, 'healthy') / median(rows, 'healthy'):>14.2f}x")
    print()
    print(f"/app/.next/static before day2: {before:>10} bytes ({before / 2**20:.1f} MiB)  image {old_id[7:19]}")
    print(f"/app/.next/static after day2:  {after:>10} bytes ({after / 2**20:.1f} MiB)  image {new_id[7:19]}")
    print(f"ratio after / before: {after / before:.2f} ({100 * (1 - after / before):.0f} % smaller); budget 50 MiB")


if __name__ == "__main__":
    main()
