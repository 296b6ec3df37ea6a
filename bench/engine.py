"""Rule-engine throughput and memory. Prints figures; asserts nothing.

    .venv/bin/python bench/engine.py [--events 200000] [--memory-events 1000000]

1. events/s for parsing alone (json.loads + TrailEvent), the floor;
2. parse + builtin:cis;
3. parse + builtin:cis + 500 generated rules (indexed engine);
4. the same 515 rules evaluated naively (every rule on every event);
5. peak RSS for 1,000,000 events through a threshold rule with 100,000 distinct groups, and
   RSS once the windows have expired.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import START, api_names, corpus
from veilleur.model import TrailEvent, format_time
from veilleur.rules.engine import Engine
from veilleur.rules.loader import load_rules, parse_rules


def generated_rules(n: int, seed: int = 11) -> str:
    """``n`` rules shaped like a real detection set: most pin a few event names (a third of
    them names the corpus uses, with a further condition that seldom holds), some pin an
    event source, a few (2 %) cannot be indexed at all. Both dialects."""
    rng = random.Random(seed)
    names = api_names()
    rules = []
    for i in range(n):
        kind = i % 50
        real = rng.choice(names)
        rare = f"Rare{i}Operation"
        pinned = [real, rare] if rng.random() < 0.33 else [rare, f"Rare{i}Other"]
        rule: dict[str, object]
        if kind < 35:
            rule = {
                "match": {
                    "eventName": pinned,
                    "userIdentity": {"type": [{"anything-but": ["AssumedRole"]}]},
                }
            }
        elif kind < 44:
            rule = {
                "filter_pattern": f'{{ ($.eventName = "{pinned[0]}") && '
                f'($.errorCode = "*UnauthorizedOperation") }}'
            }
        elif kind < 49:
            rule = {
                "match": {
                    "eventSource": [f"svc{i}.amazonaws.com"],
                    "sourceIPAddress": [{"cidr": "192.0.2.0/24"}],
                }
            }
        else:
            rule = {"match": {"eventName": [{"prefix": f"Zz{i}"}]}}  # unindexable
        rules.append({"id": f"gen-{i}", "title": f"generated {i}", "severity": "low", **rule})
    return json.dumps(rules)


def _malloc_trim() -> None:
    """Ask glibc to hand freed heap pages back to the OS (what a long-running daemon's
    allocator does over time); a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # kB -> MB


def timed(label: str, texts: list[str], engine: Engine | None) -> float:
    t = time.perf_counter()
    alerts = 0
    for i in range(0, len(texts), 1000):
        events = [TrailEvent.from_record(json.loads(s)) for s in texts[i : i + 1000]]
        if engine is not None:
            alerts += len(engine.process(events, events[-1].event_time))
    dt = time.perf_counter() - t
    rate = len(texts) / dt
    extra = f", {alerts} alerts" if engine is not None else ""
    print(f"{label:<46} {rate:>10,.0f} events/s{extra}")
    return rate


def memory(n: int, groups: int, rounds: int = 2) -> None:
    """Fill 100,000 groups, let every window expire, again: the Python heap (allocated
    blocks) returns to its start each round and RSS does not grow from round to round."""
    rule = parse_rules(
        json.dumps(
            [
                {
                    "id": "per-ip",
                    "title": "t",
                    "severity": "low",
                    "match": {"eventName": ["ConsoleLogin"]},
                    "threshold": {"count": 1000, "within": "5m", "group_by": ["sourceIPAddress"]},
                }
            ]
        ),
        "bench",
    )
    engine = Engine(rule, lateness=timedelta(minutes=15))
    gc.collect()
    base, blocks0 = rss_mb(), sys.getallocatedblocks()
    print(f"\nthreshold rule, {n:,} events, {groups:,} groups, {rounds} rounds")
    print(f"  start: RSS {base:.0f} MB, {blocks0:,} allocated blocks")
    step = 10_000
    origin = START
    for round_no in range(1, rounds + 1):
        peak_groups = 0
        t = time.perf_counter()
        for i in range(0, n, step):
            batch = []
            for j in range(i, i + step):
                ts = origin + timedelta(milliseconds=j)  # 1,000 events/s: 1M events in ~17 min
                g = j % groups
                batch.append(
                    TrailEvent.from_record(
                        {
                            "eventID": f"r{round_no}e{j}",
                            "eventTime": format_time(ts),
                            "eventName": "ConsoleLogin",
                            "eventSource": "signin.amazonaws.com",
                            "sourceIPAddress": f"10.{g >> 16}.{(g >> 8) & 255}.{g & 255}",
                            "userIdentity": {"type": "IAMUser", "userName": f"user{g % 50}"},
                        }
                    )
                )
            engine.process(batch, batch[-1].event_time)
            peak_groups = max(peak_groups, engine.group_count())
        dt = time.perf_counter() - t
        during, blocks_live = rss_mb(), sys.getallocatedblocks()
        origin += timedelta(milliseconds=n) + timedelta(minutes=21)
        engine.expire(origin)
        gc.collect()
        _malloc_trim()
        after, blocks_after = rss_mb(), sys.getallocatedblocks()
        print(
            f"  round {round_no} ({n / dt:,.0f} events/s): windows live {peak_groups:,} groups, "
            f"RSS {during:.0f} MB, {blocks_live:,} blocks; after expiry "
            f"{engine.group_count()} groups, RSS {after:.0f} MB, {blocks_after:,} blocks"
        )
    print(
        f"  peak RSS {peak_mb():.0f} MB. After expiry the allocated blocks fall back to the same "
        "level every round (the groups are gone); RSS stays above the start (CPython keeps "
        "freed arenas for reuse) but no round adds to it."
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--memory-events", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--memory-only", action="store_true")
    args = ap.parse_args()
    if args.memory_only:
        memory(args.memory_events, args.groups)
        return
    print(f"building a corpus of {args.events:,} records ...")
    texts = list(corpus(args.events))
    cis = load_rules(["builtin:cis"])
    gen = parse_rules(generated_rules(500), "generated")
    print(f"python {sys.version.split()[0]}, {len(texts):,} events\n")
    floor = timed("parse only", texts, None)
    r_cis = timed("parse + builtin:cis (15 rules)", texts, Engine(cis))
    indexed = Engine([*cis, *gen])
    r_515 = timed("parse + cis + 500 generated (515, indexed)", texts, indexed)
    r_naive = timed("parse + same 515 rules, naive", texts, Engine([*cis, *gen], naive=True))
    us = {
        k: 1e6 / v
        for k, v in (("parse", floor), ("cis", r_cis), ("515", r_515), ("naive", r_naive))
    }
    ev = {k: us[k] - us["parse"] for k in ("cis", "515", "naive")}
    print(
        f"\nper event: parse {us['parse']:.1f} us; evaluation alone: cis {ev['cis']:.1f} us, "
        f"515 indexed {ev['515']:.1f} us, 515 naive {ev['naive']:.1f} us"
    )
    print(f"CIS throughput vs parse-only: {r_cis / floor:.0%} (target >= 50%)")
    print(
        f"cost per event, 515 vs 15 rules: {us['515'] / us['cis']:.2f}x parse included, "
        f"{ev['515'] / ev['cis']:.2f}x evaluation alone (target <= 2x)"
    )
    print(
        f"indexed vs naive at 515 rules: {r_515 / r_naive:.1f}x parse included, "
        f"{ev['naive'] / ev['515']:.1f}x evaluation alone (target >= 10x)"
    )
    print(
        f"rules tried on every event (not indexable): {len(indexed.rules) - indexed._index.indexed}"
    )
    del texts
    # Memory in a fresh process, so the corpus above does not blur the figures.
    import subprocess

    subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-only",
            "--memory-events",
            str(args.memory_events),
            "--groups",
            str(args.groups),
        ],
        check=True,
    )


if __name__ == "__main__":
    main()
