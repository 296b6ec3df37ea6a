"""CloudTrail polling figures, through the real poller, emulator and sinks. Asserts nothing.

    .venv/bin/python bench/poll.py [--rate 10] [--minutes 30] [--day-hours 24] [--only calls]

1. API calls per poll for three rule sets (three query plans) against the minimum: the calls
   needed to read each new event once (no overlap), and the pages a full scan of the same
   window needs. LookupEvents allows 2 requests/s (we pace at 1.5/s): a poll whose calls take
   longer than the interval cannot keep up.
2. Detection latency, from "visible in LookupEvents" to "message in the SQS queue subscribed to
   the SNS topic", p50/p99, at a 30 s poll interval (simulated time; delays drawn from the
   emulator's realistic model).
3. RSS over a simulated day at ``--rate`` events/s (emulator clock fast-forwarded), hourly.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto.server import ThreadedMotoServer

from veilleur.aws import SessionFactory
from veilleur.build import Clocks, build_watch
from veilleur.config import load_config
from veilleur.emulator import CloudTrailEmulator
from veilleur.model import format_time
from veilleur.observe.metrics import Metrics
from veilleur.store.sqlite import SqliteStore

INTERVAL = 30.0
ACCOUNT, REGION = "123456789012", "us-east-1"
WRITES_RULES = """
- id: writes-only-iam
  title: IAM writes
  severity: low
  match: {readOnly: [false], eventSource: [iam.amazonaws.com]}
- id: writes-only-failed-login
  title: failed sign-ins
  severity: high
  match: {readOnly: [false], eventName: [ConsoleLogin], errorMessage: [Failed authentication]}
  threshold: {count: 5, within: 5m, group_by: [sourceIPAddress]}
"""
DAY_RULES = """
- id: day-iam-write-errors
  title: failed IAM writes
  severity: low
  match: {readOnly: [false], eventSource: [iam.amazonaws.com], errorCode: [{exists: true}]}
- id: day-failed-login
  title: failed sign-ins
  severity: high
  match: {readOnly: [false], eventName: [ConsoleLogin], errorMessage: [Failed authentication]}
  threshold: {count: 5, within: 5m, group_by: [sourceIPAddress]}
"""
NAMES_RULES = """
- id: names-failed-login
  title: failed sign-ins
  severity: high
  match: {eventName: [ConsoleLogin], errorMessage: [Failed authentication]}
  threshold: {count: 5, within: 5m, group_by: [sourceIPAddress]}
- id: names-stop-logging
  title: trail stopped
  severity: critical
  match: {eventName: [StopLogging, DeleteTrail]}
"""


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.t = start.timestamp()
        self.lock = threading.Lock()

    def time(self) -> float:
        with self.lock:
            return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def sleep(self, s: float) -> None:
        with self.lock:
            self.t += max(0.0, s)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 1e6


def record(
    rng: random.Random, t: datetime, *, failed_login_ip: str | None = None
) -> dict[str, Any]:
    if failed_login_ip:
        return {
            "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
            "eventTime": format_time(t),
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "awsRegion": REGION,
            "recipientAccountId": ACCOUNT,
            "readOnly": False,
            "sourceIPAddress": failed_login_ip,
            "errorMessage": "Failed authentication",
            "userIdentity": {"type": "IAMUser", "userName": "alice"},
            "responseElements": {"ConsoleLogin": "Failure"},
        }
    write = rng.random() < 0.12
    svc = rng.choice(["ec2", "s3", "iam", "kms", "lambda", "rds", "ssm", "sts"])
    verb = rng.choice(
        ["Create", "Delete", "Put", "Update"] if write else ["Describe", "List", "Get"]
    )
    who = rng.randrange(30)
    return {
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventTime": format_time(t),
        "eventSource": f"{svc}.amazonaws.com",
        "eventName": f"{verb}Things",
        "awsRegion": REGION,
        "recipientAccountId": ACCOUNT,
        "readOnly": not write,
        "sourceIPAddress": f"10.0.{who}.{rng.randrange(250)}",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/r{who % 5}/s{who}",
        },
        "requestParameters": {"maxResults": 50},
    }


class World:
    """moto (SNS, SQS) + the emulator + a Watch, sharing one fake clock."""

    def __init__(self, moto_url: str, rules: list[str], tmp: Path, start: datetime) -> None:
        self.clock = FakeClock(start)
        self.emu = CloudTrailEmulator(clock=self.clock.time).start()
        os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = self.emu.url
        sess = boto3.Session(region_name=REGION)
        self.sqs = sess.client("sqs")
        sns = sess.client("sns")
        name = f"t{uuid.uuid4().hex[:8]}"
        topic = sns.create_topic(Name=name)["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        qarn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
        cfg_path = tmp / f"{name}.yaml"
        (tmp / name).mkdir()
        cfg_path.write_text(
            yaml.safe_dump(
                {
                    "rules": rules,
                    "state_dir": str(tmp / name),
                    "regions": [REGION],
                    "accounts": [{"id": ACCOUNT}],
                    "log": {"level": "warning"},
                    "cloudtrail": {"max_pages_per_poll": 10_000},
                    "sinks": {"sns": [{"name": "topic", "topic_arn": topic}]},
                }
            )
        )
        cfg = load_config(cfg_path)
        self.store = SqliteStore.open(tmp / name / "veilleur.sqlite3")
        clocks = Clocks(now=self.clock.now, monotonic=self.clock.time, sleep=self.clock.sleep)
        self.watch = build_watch(
            cfg, self.store, Metrics(), SessionFactory(sess), threading.Event(), clocks
        )
        self.source = self.watch.sources[0]

    def received(self) -> list[dict[str, Any]]:
        import json

        out = []
        while True:
            r = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            msgs = r.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(json.loads(m["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])

    def close(self) -> None:
        self.store.close()
        self.emu.stop()


def write_rules(tmp: Path) -> Path:
    rules_dir = tmp / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "writes.yaml").write_text(WRITES_RULES)
    (rules_dir / "names.yaml").write_text(NAMES_RULES)
    return rules_dir


def calls_per_poll(moto_url: str, tmp: Path, rate: float, minutes: int) -> None:
    print(
        f"\n1. API calls per poll, {rate:g} events/s (12 % writes), 30 s interval, "
        f"15 min lateness, {minutes} simulated minutes"
    )
    print(
        f"   {'rule set':<26}{'plan':<8}{'calls/poll':>11}{'max':>6}{'min (no overlap)':>18}"
        f"{'full scan':>11}{'poll time':>11}  keeps up?  lag at 1/2 and end"
    )
    rules_dir = write_rules(tmp)
    sets = [
        ("builtin cis+essentials", ["builtin:cis", "builtin:essentials"]),
        ("readOnly=false rules", [str(rules_dir / "writes.yaml")]),
        ("two event names", [str(rules_dir / "names.yaml")]),
    ]
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(hours=3)
    for label, rules in sets:
        rng = random.Random(5)
        w = World(moto_url, rules, tmp, start)
        n = int(rate * 60 * (minutes + 16))
        recs = [record(rng, start + timedelta(seconds=i / rate)) for i in range(n)]
        w.emu.add_events(recs, delay=300.0)  # typical 5 min delivery delay
        w.clock.t = (start + timedelta(minutes=16)).timestamp()
        calls, mins, fulls, durations, lags = [], [], [], [], []
        last_visible = w.clock.time() - INTERVAL
        for _ in range(int(minutes * 60 / INTERVAL)):
            t_before = w.clock.time()
            r = w.watch.tick(w.source)
            res = w.source.last_result
            assert res is not None
            durations.append(w.clock.time() - t_before)
            calls.append(res.calls)
            now = w.clock.time()
            new_vis = sum(1 for x in recs if last_visible < _vis(x) <= now and _in_plan(w, x))
            mins.append(
                max(1, math.ceil(new_vis / 50)) * len(w.source.poller.plan.lookups or [None])
            )
            win = sum(
                1
                for x in recs
                if res.window_start.timestamp() <= _t(x) <= res.window_end.timestamp()
            )
            fulls.append(max(1, math.ceil(win / 50)))
            last_visible = now
            mark = w.source.state.watermark
            lags.append(now - mark.timestamp() if mark else float("nan"))
            w.clock.t = max(w.clock.t, t_before + INTERVAL)
            del r
        plan = w.source.poller.plan.kind.value
        keeps = "yes" if max(durations) < INTERVAL else "NO"
        print(
            f"   {label:<26}{plan:<8}{statistics.mean(calls):>11.1f}{max(calls):>6}"
            f"{statistics.mean(mins):>18.1f}{statistics.mean(fulls):>11.1f}"
            f"{statistics.mean(durations):>10.1f}s  {keeps:<9}  "
            f"{lags[len(lags) // 2]:.0f} s, {lags[-1]:.0f} s"
        )
        w.close()


def _t(rec: dict[str, Any]) -> float:
    return datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00")).timestamp()


def _vis(rec: dict[str, Any]) -> float:
    return _t(rec) + 300.0


def _in_plan(w: World, rec: dict[str, Any]) -> bool:
    plan = w.source.poller.plan
    for lk in plan.lookups:
        if lk is None:
            return True
        key, value = lk
        if key == "ReadOnly" and str(rec["readOnly"]).lower() == value:
            return True
        if key == "EventName" and rec["eventName"] == value:
            return True
    return False


def latency(moto_url: str, tmp: Path, rate: float) -> None:
    print(
        "\n2. Detection latency (visible in LookupEvents -> message in the subscriber queue), "
        "30 s interval"
    )
    from veilleur.emulator.cloudtrail_control import DelayModel

    rng = random.Random(9)
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(hours=2)
    w = World(moto_url, [str(write_rules(tmp) / "writes.yaml")], tmp, start)
    model = DelayModel()  # log-normal around 3 min; 5 % between 15 and 30 min
    vis: dict[str, float] = {}
    bursts = 40
    for b in range(bursts):
        t0 = start + timedelta(seconds=150 * b)
        for i in range(5):
            rec = record(rng, t0 + timedelta(seconds=3 * i), failed_login_ip=f"192.0.2.{b}")
            d = model.sample(rng)
            w.emu.add_event(rec, delay=d)
            vis[rec["sourceIPAddress"]] = max(vis.get(rec["sourceIPAddress"], 0), _t(rec) + d)
    noise = [
        record(rng, start + timedelta(seconds=i / rate)) for i in range(int(rate * 150 * bursts))
    ]
    w.emu.add_events(noise, delay=240.0)
    w.clock.t = start.timestamp()
    lat: list[float] = []
    end = start.timestamp() + 150 * bursts + 3600
    while w.clock.time() < end and len(lat) < bursts:
        t_before = w.clock.time()
        w.watch.tick(w.source)
        w.watch.drain()
        for doc in w.received():
            ip = doc["group"].get("sourceIPAddress")
            if ip in vis:
                lat.append(w.clock.time() - vis.pop(ip))
        w.clock.t = max(w.clock.t, t_before + INTERVAL)
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    on_time = sorted(x for x in lat if x <= 2 * INTERVAL)
    print(
        f"   {len(lat)} of {bursts} bursts alerted; p50 {p50:.1f} s, p99 {p99:.1f} s, "
        f"max {lat[-1]:.1f} s"
    )
    print(
        f"   {len(on_time)} caught by the regular poll (max {on_time[-1]:.1f} s); "
        f"{len(lat) - len(on_time)} only by the late sweep (an event shown > 15 min late)"
    )
    print("   (counted from the moment the burst's last event is visible in LookupEvents;")
    print("    LookupEvents' own delivery delay comes on top)")
    w.close()


def day(moto_url: str, tmp: Path, rate: float, hours: float) -> None:
    print(f"\n3. RSS over {hours:g} simulated hour(s) at {rate:g} events/s (readOnly=false plan)")
    rng = random.Random(3)
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(hours=hours + 1)
    # Rules that read every write (the ReadOnly=false plan) but seldom fire: the figure is
    # the daemon's steady state, not moto's memory of delivered messages.
    (tmp / "rules" / "day.yaml").write_text(DAY_RULES)
    w = World(moto_url, [str(tmp / "rules" / "day.yaml")], tmp, start)
    w.clock.t = start.timestamp()
    fed_until = start.timestamp()
    series = []
    next_report = start.timestamp()
    end = start.timestamp() + hours * 3600
    polls = 0
    while w.clock.time() < end:
        t_before = w.clock.time()
        horizon = t_before + 120
        batch = []
        while fed_until < horizon:
            batch.append(record(rng, datetime.fromtimestamp(fed_until, tz=UTC)))
            fed_until += 1 / rate
        if batch:
            w.emu.add_events(batch, delay=60.0)
        w.emu.forget_before(t_before - 20 * 60)
        w.watch.tick(w.source)
        w.watch.drain()
        polls += 1
        if t_before >= next_report:
            series.append(
                (len(series), rss_mb(), len(w.source.state.seen), w.watch.engine.group_count())
            )
            next_report += 3600
        w.clock.t = max(w.clock.t, t_before + INTERVAL)
    series.append((len(series), rss_mb(), len(w.source.state.seen), w.watch.engine.group_count()))
    print(f"   {polls} polls; hour: RSS MB (seen ids, threshold groups)")
    print("   " + "  ".join(f"{h}h:{r:.0f} ({s},{g})" for h, r, s, g in series))
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--day-hours", type=float, default=24.0)
    ap.add_argument("--only", choices=["calls", "latency", "day"], help="one section only")
    args = ap.parse_args()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        os.environ[k] = v
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = moto_url
    import logging

    logging.disable(logging.WARNING)
    from veilleur.observe.logs import configure_logging

    configure_logging("error", "json", open(os.devnull, "w"))  # noqa: SIM115
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "calls"):
            calls_per_poll(moto_url, tmp, args.rate, args.minutes)
        if args.only in (None, "latency"):
            latency(moto_url, tmp, args.rate)
        if args.only in (None, "day") and args.day_hours > 0:
            day(moto_url, tmp, args.rate, args.day_hours)
    server.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
