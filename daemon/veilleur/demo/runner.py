"""``veilleur demo``: local AWS stand-ins, the real daemon as a child process, the story played.

1. moto's server (SNS, SQS, EventBridge, CloudWatch, STS) and veilleur's LookupEvents emulator,
   both on 127.0.0.1;
2. an SNS topic with an "email" and an "SMS" subscriber (SQS queues standing in), an event bus
   with a rule whose target queue stands in for the lockdown automation;
3. a config file written for the demo, and ``veilleur run -c`` on it (the daemon's own code path);
4. the story: background noise, then the attacks, each visible a few seconds after it happened;
   a CPU metric breaching 3 of 5 periods, then recovering;
5. every message printed as its subscriber receives it; a verdict; exit 0 only if all arrived.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from veilleur.demo import scenario, show

DEADLINE_SECONDS = 240
METRIC_RULE = "demo-web-cpu-high"
METRIC_RULES = f"""
- id: {METRIC_RULE}
  title: Web fleet CPU above 80 %
  severity: high
  description: The web Auto Scaling group's CPU breached 80 % in 3 of the last 5 minutes.
  metric:
    namespace: {scenario.CPU_NAMESPACE}
    metric_name: CPUUtilization
    dimensions: {{AutoScalingGroupName: web}}
    statistic: Maximum
    period: 1m
    comparison: ">"
    threshold: 80
    evaluation_periods: 5
    datapoints_to_alarm: 3
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(moto_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",  # dummies: no account
        "AWS_DEFAULT_REGION": scenario.REGION,
        "AWS_REGION": scenario.REGION,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_CLOUDTRAIL": emulator_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rng = random.Random(2026)
        self.seen: dict[str, set[str]] = {"email": set(), "sms": set(), "bus": set()}
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.played: dict[str, tuple[float, str]] = {}  # alert key -> (played at, step title)

    # -- the stage -------------------------------------------------------------------------
    def start_servers(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            sys.exit("veilleur demo needs the demo extra: pip install 'veilleur[demo]'")
        from veilleur.emulator import CloudTrailEmulator

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self.emulator = CloudTrailEmulator().start()
        os.environ.update(_env(self.moto_url, self.emulator.url))
        import boto3

        session = boto3.Session(region_name=scenario.REGION)
        self.sns, self.sqs = session.client("sns"), session.client("sqs")
        self.events, self.cw = session.client("events"), session.client("cloudwatch")

    def _queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def create_topology(self) -> None:
        self.topic = self.sns.create_topic(Name="veilleur-alerts")["TopicArn"]
        self.q = {}
        for who in ("email", "sms"):
            url, arn = self._queue(f"security-lead-{who}")
            self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn)
            self.q[who] = url
        self.events.create_event_bus(Name="veilleur")
        url, arn = self._queue("lockdown-automation")
        self.events.put_rule(
            Name="veilleur-to-lockdown",
            EventBusName="veilleur",
            EventPattern=json.dumps({"source": ["veilleur"]}),
        )
        self.events.put_targets(
            Rule="veilleur-to-lockdown",
            EventBusName="veilleur",
            Targets=[{"Id": "lockdown", "Arn": arn}],
        )
        self.q["bus"] = url

    def write_config(self) -> Path:
        (self.workdir / "demo-rules.yaml").write_text(METRIC_RULES)
        self.metrics_port = _free_port()
        config = {
            "rules": ["builtin:essentials", "demo-rules.yaml"],
            "state_dir": str(self.workdir / "state"),
            "regions": [scenario.REGION],
            "accounts": [{}],
            "cloudtrail": {"poll_interval": "2s", "lateness": "3m", "max_requests_per_second": 1.5},
            "cloudwatch": {"poll_interval": "5s", "delay": "0s"},
            "sinks": {
                "sns": [{"name": "security-lead", "topic_arn": self.topic}],
                "eventbridge": [{"name": "lockdown", "bus": "veilleur"}],
            },
            "notify": {"drain_interval": "1s"},
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "log": {"format": "json", "level": "info"},
        }
        (self.workdir / "state").mkdir(exist_ok=True)
        path = self.workdir / "veilleur.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start_daemon(self, config: Path) -> subprocess.Popen[bytes]:
        self.log_path = self.workdir / "daemon.log"
        log = self.log_path.open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "veilleur.cli", "run", "-c", str(config)],
            env={**os.environ},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    # -- the play --------------------------------------------------------------------------
    def feed_noise(self) -> None:
        start = datetime.now(tz=UTC) - timedelta(minutes=2)
        for t in scenario.noise_stream(self.rng, start, per_second=4.0):
            if self.stop.is_set():
                return
            wait = t.timestamp() - time.time()
            if wait > 0 and self.stop.wait(wait):
                return
            delay = self.rng.uniform(3.0, 12.0)  # LookupEvents shows events late
            self.emulator.add_event(scenario.noise(self.rng, t), delay=delay)

    def seed_metric(self) -> datetime:
        minute = datetime.now(tz=UTC).replace(second=0, microsecond=0)
        self._put_cpu(scenario.cpu_history(minute))
        return minute

    def _put_cpu(self, points: list[tuple[datetime, float]]) -> None:
        self.cw.put_metric_data(
            Namespace=scenario.CPU_NAMESPACE,
            MetricData=[
                {
                    "MetricName": "CPUUtilization",
                    "Timestamp": t,
                    "Value": v,
                    "Unit": "Percent",
                    "Dimensions": scenario.CPU_DIMENSIONS,
                }
                for t, v in points
            ],
        )

    def calm_cpu(self, since: datetime) -> None:
        now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
        points, t = [], since
        while t <= now:
            points.append((t, round(22.0 + self.rng.random() * 5, 1)))
            t += timedelta(minutes=1)
        self._put_cpu(points)

    def receive(self) -> None:
        """What the subscribers got since the last look, printed alert by alert."""
        arrived: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for who, url in self.q.items():
            resp = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            for m in resp.get("Messages", []):
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                body = json.loads(m["Body"])
                doc = body.get("detail", {}) if who == "bus" else json.loads(body["Message"])
                key = _key(doc)
                self.seen[who].add(key)
                arrived.setdefault(key, []).append((who, body if who == "bus" else doc))
        elapsed = time.monotonic() - self.t0
        for key, messages in arrived.items():
            played = self.played.get(key)
            after = f", {elapsed - played[0]:.0f} s after: {played[1]}" if played else ""
            print(f"\n◀ +{elapsed:.0f}s  {key} reached {', '.join(w for w, _ in messages)}{after}")
            for who, doc in messages:
                {"email": show.email, "sms": show.sms, "bus": show.event}[who](doc)


def _key(doc: dict[str, Any]) -> str:
    details = doc.get("details") or {}
    if "new_state" in details:
        return f"{doc.get('rule_id')} -> {details['new_state']}"
    return str(doc.get("rule_id"))


def run_demo() -> int:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    workdir = Path(tempfile.mkdtemp(prefix="veilleur-demo-"))
    code = 1
    try:
        demo = Demo(workdir)
        print("veilleur demo: local stand-ins for AWS, the real daemon, the reference story.")
        demo.start_servers()
        demo.create_topology()
        config = demo.write_config()
        proc = demo.start_daemon(config)
        print(f"  moto (SNS, SQS, EventBridge, CloudWatch, STS): {demo.moto_url}")
        print(f"  LookupEvents emulator:                         {demo.emulator.url}")
        print(f"  daemon: veilleur run -c {config}  (log: {demo.log_path})")
        print(f"  metrics while it runs: http://127.0.0.1:{demo.metrics_port}/metrics")
        try:
            code = _play(demo, proc)
        finally:
            demo.stop.set()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            demo.emulator.stop()
            demo.moto.stop()
        return code
    finally:
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # what went wrong stays readable
            print(f"The daemon's log and state are kept in {workdir}")


def _play(demo: Demo, proc: subprocess.Popen[bytes]) -> int:
    threading.Thread(target=demo.feed_noise, daemon=True).start()
    minute = demo.seed_metric()
    start = datetime.now(tz=UTC)
    steps = scenario.story(demo.rng, start)
    expected = [r for s in steps for r in s.expect]
    expected += [f"{METRIC_RULE} -> ALARM", f"{METRIC_RULE} -> OK"]
    print("\nThe story: background noise by 5 users and roles, then:")
    for s in steps:
        print(f"  +{s.at:>3.0f}s  {s.title}")
    print("  and the web fleet's CPU above 80 % in 3 of the last 5 minutes, then back to normal.")
    pending = list(steps)
    calmed = False
    t0 = demo.t0 = time.monotonic()
    demo.played[f"{METRIC_RULE} -> ALARM"] = (0.0, "CPU above 80 % in 3 of the last 5 minutes")
    while time.monotonic() - t0 < DEADLINE_SECONDS:
        if proc.poll() is not None:
            print(f"\nthe daemon exited with {proc.returncode}; see {demo.log_path}")
            break
        elapsed = time.monotonic() - t0
        while pending and pending[0].at <= elapsed:
            step = pending.pop(0)
            print(f"\n▶ +{elapsed:.0f}s  played: {step.title}")
            demo.played.update((k, (elapsed, step.title)) for k in step.expect)
            demo.emulator.add_events(list(step.records), delay=demo.rng.uniform(4.0, 10.0))
        demo.receive()
        if not calmed and f"{METRIC_RULE} -> ALARM" in demo.seen["email"]:
            demo.calm_cpu(minute)  # one calm minute after the breach resolves the alarm
            demo.played[f"{METRIC_RULE} -> OK"] = (time.monotonic() - t0, "the CPU calms down")
            calmed = True
        elif calmed:
            demo.calm_cpu(minute)
        if all(k in demo.seen[w] for k in expected for w in demo.seen):
            break
        time.sleep(0.5)  # a pacing loop for the display, not synchronisation
    rows = [
        (k, k in demo.seen["email"], k in demo.seen["sms"], k in demo.seen["bus"]) for k in expected
    ]
    unexpected = sorted(set().union(*demo.seen.values()) - set(expected))
    ok = show.verdict(rows, unexpected)
    print(
        f"Metrics were at http://127.0.0.1:{demo.metrics_port}/metrics; "
        f"the demo took {time.monotonic() - t0:.0f} s."
    )
    return 0 if ok else 1
