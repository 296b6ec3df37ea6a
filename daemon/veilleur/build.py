"""Wiring: from a validated Config to the objects a Watch needs. No logic of its own."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from veilleur.aws import SessionFactory, Target
from veilleur.config import Config
from veilleur.model import Severity
from veilleur.notify.backoff import RetryPolicy
from veilleur.notify.storm import StormGate, StormLimits
from veilleur.observe.metrics import Metrics
from veilleur.rules.engine import Engine
from veilleur.service import SinkRoute, Source, Watch, utcnow
from veilleur.sinks.eventbridge import EventBridgeSink
from veilleur.sinks.sns import SnsSink
from veilleur.sources.cloudtrail import CloudTrailPoller, PollError, PollSettings
from veilleur.sources.cloudwatch import CloudWatchSource
from veilleur.sources.pacing import Pacer
from veilleur.sources.query_plan import plan_for
from veilleur.store.sqlite import SqliteStore

STATE_FILE = "veilleur.sqlite3"


def state_path(cfg: Config) -> Path:
    return Path(cfg.model.state_dir) / STATE_FILE


def stop_aware_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that ends the poll (as an incomplete one) when the daemon is stopping."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise PollError("stopping", permanent=False)

    return sleep


@dataclass(frozen=True)
class Clocks:
    """Time as the daemon sees it; tests and the demo inject their own."""

    now: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] | None = None  # None: a stop-aware real sleep


REAL_CLOCKS = Clocks()


@dataclass(frozen=True)
class Place:
    """An (account, region) to watch, with the credentials that reach it."""

    target: Target
    role_arn: str | None
    external_id: str | None


def resolve_places(cfg: Config, factory: SessionFactory) -> list[Place]:
    """Every (account, region); an account without ``id`` is asked of STS once."""
    m = cfg.model
    places = []
    for acct in m.accounts:
        regions = acct.regions or m.regions
        account_id = acct.id or factory.account_id(acct.role_arn, regions[0])
        places += [Place(Target(account_id, r), acct.role_arn, acct.external_id) for r in regions]
    return places


def build_sources(
    cfg: Config,
    factory: SessionFactory,
    places: list[Place],
    stop: threading.Event,
    clocks: Clocks = REAL_CLOCKS,
) -> list[Source]:
    m = cfg.model
    if not m.cloudtrail.enabled:
        return []
    plan = plan_for(cfg.rules)
    settings = poll_settings(cfg)
    sources = []
    for p in places:
        t = p.target
        client = factory.client("cloudtrail", t.region, p.role_arn, p.external_id)
        pacer = Pacer(
            m.cloudtrail.max_requests_per_second,
            clocks.monotonic,
            clocks.sleep or stop_aware_sleep(stop),
        )
        poller = CloudTrailPoller(client, t, plan, pacer, settings)
        sources.append(Source(key=f"cloudtrail/{t.account}/{t.region}", poller=poller))
    return sources


def poll_settings(cfg: Config) -> PollSettings:
    ct = cfg.model.cloudtrail
    return PollSettings(
        lateness=ct.lateness,
        max_pages=ct.max_pages_per_poll,
        sweep_lateness=ct.sweep_lateness or None,
        sweep_interval=ct.sweep_interval,
        sweep_max_pages=ct.sweep_max_pages_per_poll,
    )


def build_metric_sources(
    cfg: Config, factory: SessionFactory, places: list[Place]
) -> list[CloudWatchSource]:
    if not cfg.metric_rules or not cfg.model.cloudwatch.enabled:
        return []
    return [
        CloudWatchSource(
            factory.client("cloudwatch", p.target.region, p.role_arn, p.external_id), p.target
        )
        for p in places
    ]


def build_sinks(cfg: Config, factory: SessionFactory) -> dict[str, SinkRoute]:
    m = cfg.model
    routes: dict[str, SinkRoute] = {}
    for s in m.sinks.sns:
        region = s.topic_arn.split(":")[3]
        client = factory.client("sns", region)
        routes[s.name] = SinkRoute(
            SnsSink(client, s.topic_arn, s.mode, name=s.name), Severity.parse(s.min_severity)
        )
    for e in m.sinks.eventbridge:
        client = factory.client("events", e.region or m.regions[0])
        routes[e.name] = SinkRoute(
            EventBridgeSink(client, e.bus, e.source, name=e.name), Severity.parse(e.min_severity)
        )
    return routes


def build_watch(
    cfg: Config,
    store: SqliteStore,
    metrics: Metrics,
    factory: SessionFactory,
    stop: threading.Event,
    clocks: Clocks = REAL_CLOCKS,
) -> Watch:
    m = cfg.model
    places = resolve_places(cfg, factory)
    lookback = poll_settings(cfg).lookback  # how late an event may still be read
    engine = Engine(cfg.rules, lateness=lookback)
    gate = StormGate(
        StormLimits(
            per_rule=m.notify.max_alerts_per_rule,
            per_sink=m.notify.max_alerts_per_sink,
            window=m.notify.rate_window,
        )
    )
    policy = RetryPolicy(
        base=m.notify.retry_base, cap=m.notify.retry_cap, max_age=m.notify.dead_letter_after
    )
    watch = Watch(
        engine=engine,
        gate=gate,
        store=store,
        sources=build_sources(cfg, factory, places, stop, clocks),
        sinks=build_sinks(cfg, factory),
        metrics=metrics,
        policy=policy,
        lateness=lookback,
        clock=clocks.now,
        metric_rules=cfg.metric_rules,
        metric_sources=build_metric_sources(cfg, factory, places),
        metric_delay=m.cloudwatch.delay,
    )
    metrics.set_rules_loaded(
        Counter([r.origin for r in cfg.rules] + [r.origin for r in cfg.metric_rules])
    )
    watch.restore()
    return watch
