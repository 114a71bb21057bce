"""Day 3 figure on a throwaway demo stack: the cache hit rate before and after `day3`, same traffic.

The traffic and the measurement are exactly the plan's hit-rate check
(plans/day3.yaml, step `hit-rate`: GET /api/media/{n} over `keys` ids at `rate`
per second; hit rate = keyspace_hits / (hits + misses) as a delta over `window`
after `warmup`), run through the `redis_info` probe itself:

1. before: Redis as the stack starts (maxmemory-policy noeviction, no maxmemory),
   cache middleware off;
2. after: `rollout apply day3` done (allkeys-lru, maxmemory 384mb, middleware on).

The cache is flushed before each measurement so both start cold. Also printed:
the hit rate the apply journaled for its own check, and evicted_keys/used_memory
(whether the eviction policy had anything to do).

Run: .venv/bin/python bench/day3_hitrate.py [--keys N] [--rate R] [--warmup 3s] [--window 10s]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from helpers import journal_records, rollout  # noqa: E402
from stack import DemoStack  # noqa: E402

from orchestrator.hosts import Connection  # noqa: E402
from orchestrator.inventory import load_inventory
from orchestrator.probes.redis_info import RedisInfoProbe  # noqa: E402
from orchestrator.clients.redis import endpoint_of  # noqa: E402


def plan_probe_body() -> dict:
    plan = YAML(typ="safe").load((REPO / "plans" / "day3.yaml").read_text())
    step = next(s for s in plan["steps"] if s.get("id") == "hit-rate")
    return dict(step["check"]["redis_info"])


def measure(inventory: Path, body: dict, label: str) -> dict:
    inv = load_inventory(inventory)
    with Connection(inv, list(inv.host_data)) as targets:
        target = targets[0]
        ep = endpoint_of(target, body)
        ep.call("FLUSHALL")
        started = time.monotonic()
        result = RedisInfoProbe(body, target).measure()
        info = ep.info()
        policy = ep.config_get("maxmemory-policy")
        maxmemory = ep.config_get("maxmemory")
    print(f"{label:>6}: hit rate {result.value}  [{result.detail}]  "
          f"policy {policy}, maxmemory {maxmemory}, used_memory {info['used_memory']}, "
          f"evicted_keys {info.get('evicted_keys')}  ({time.monotonic() - started:.1f}s)")
    return {"value": result.value, "detail": result.detail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--warmup")
    parser.add_argument("--window")
    args = parser.parse_args()
    body = plan_probe_body()
    if args.keys:
        body["traffic"]["keys"] = args.keys
    if args.rate:
        body["traffic"]["rate"] = args.rate
    if args.warmup:
        body["warmup"] = args.warmup
    if args.window:
        body["window"] = args.window

    with tempfile.TemporaryDirectory() as tmp, DemoStack(Path(tmp)) as stack:
        stack.up()
        data = stack.host_data
        body["traffic"]["url"] = body["traffic"]["url"].replace("{{ host.data.app_port }}", str(data["app_port"]))
        t = body["traffic"]
        print(f"traffic: GET {t['url']} over {t.get('keys', 20)} key(s) at {t.get('rate', 10)}/s; "
              f"hit rate over {body.get('window', '10s')} after a {body.get('warmup', '0s')} warm-up; cache flushed first")
        before = measure(stack.inventory_path, body, "before")

        started = time.monotonic()
        applied = rollout("apply", "day3", "-i", str(stack.inventory_path), "--yes")
        if applied.returncode != 0:
            sys.exit(f"rollout apply day3 failed ({applied.returncode}):\n{applied.stdout}{applied.stderr}")
        journaled = next(r["result"]["value"] for r in journal_records(stack.project_dir)[-1]
                         if r["t"] == "probe" and "hit rate" in r["result"]["detail"])
        print(f" apply: rollout apply day3 in {time.monotonic() - started:.1f}s; its own hit-rate check measured {journaled}")
        after = measure(stack.inventory_path, body, "after")
        print(f"\nhit rate before {before['value']} → after {after['value']} (same traffic, cold cache each time)")


if __name__ == "__main__":
    main()
