"""The long-running process: scheduler, signals, systemd, health. Straight-line wiring.

Jobs (APScheduler 3.x, coalesce, max_instances=1): one per CloudTrail source, the outbox
drain, and maintenance. The main thread only beats: systemd watchdog, liveness, reloads.
SIGTERM/SIGINT: stop polling (a poll in flight ends at its next paced request and commits
what it read), drain for a bounded time, exit 0. SIGHUP: reload config and rules; a bad
reload keeps the running ones and says why.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from veilleur import __version__
from veilleur.aws import SessionFactory
from veilleur.build import build_watch, state_path
from veilleur.config import Config, load_config
from veilleur.observe.health import HealthServer, Heartbeat
from veilleur.observe.logs import configure_logging
from veilleur.observe.metrics import Metrics
from veilleur.observe.systemd import Notifier, watchdog_interval
from veilleur.service import Watch, utcnow
from veilleur.store.sqlite import SqliteStore
from veilleur.validation import ConfigError

log = structlog.get_logger("veilleur")
BEAT_SECONDS = 2.0
DRAIN_ON_STOP_SECONDS = 10.0


class Daemon:
    def __init__(self, config_path: Path | None, cfg: Config) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.metrics = Metrics(version=__version__)
        self.factory = SessionFactory()
        Path(cfg.model.state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.store = SqliteStore.open(state_path(cfg))
        self.watch: Watch = build_watch(cfg, self.store, self.metrics, self.factory, self.stop)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=8)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self.heartbeat = Heartbeat(max_silence=60.0)
        self.health = HealthServer.from_listen(
            cfg.model.metrics.listen, self.metrics, self.heartbeat, self.readiness
        )
        self.notifier = Notifier.from_env(os.environ)
        self._running = 0  # jobs in flight; a reload waits for none
        self._idle = threading.Condition()

    # -- readiness ---------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        ct = self.cfg.model.cloudtrail.poll_interval
        cw = self.cfg.model.cloudwatch.poll_interval
        reasons.extend(
            self.watch.freshness(
                utcnow(),
                max(3 * ct, ct + timedelta(minutes=2)),
                max(3 * cw, cw + timedelta(minutes=2)),
            )
        )
        ok = not reasons
        self.metrics.set_ready(ok)
        return ok, reasons or ["config loaded", "store open", "polls fresh"]

    # -- jobs ------------------------------------------------------------------------------
    def _job(self, name: str, work: Callable[[], object], **context: str) -> None:
        """Run one job, counted so that a reload can wait for it; a bug in it is logged
        loudly and must not kill the job: it runs again next time."""
        with self._idle:
            self._running += 1
        try:
            work()
        except Exception:
            log.exception(f"{name}_crashed", **context)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _tick(self, key: str) -> None:
        # Looked up at run time: a job queued before a reload runs on the new Watch.
        source = next((s for s in self.watch.sources if s.key == key), None)
        if source is not None:
            self._job("tick", lambda: self.watch.tick(source), source=key)

    def _tick_metrics(self) -> None:
        self._job("metric_tick", lambda: self.watch.tick_metrics())

    def _drain(self) -> None:
        self._job("drain", lambda: self.watch.drain())

    def _maintenance(self) -> None:
        def prune() -> None:
            pruned = self.store.prune_delivered(utcnow() - timedelta(days=7))
            if pruned:
                log.info("outbox_pruned", rows=pruned)

        self._job("maintenance", prune)

    def _wait_idle(self) -> None:
        """Until no job runs (a tick in flight commits first), beating meanwhile."""
        with self._idle:
            while self._running and not self.stop.is_set():
                self._idle.wait(BEAT_SECONDS)
                self.heartbeat.beat()
                self.notifier.watchdog()

    def _schedule(self) -> None:
        m = self.cfg.model
        now = utcnow()
        self.metrics.set_poll_interval("cloudtrail", m.cloudtrail.poll_interval.total_seconds())
        self.metrics.set_poll_interval("cloudwatch", m.cloudwatch.poll_interval.total_seconds())
        for src in self.watch.sources:
            self.scheduler.add_job(
                self._tick,
                "interval",
                args=[src.key],
                id=f"poll:{src.key}",
                seconds=m.cloudtrail.poll_interval.total_seconds(),
                next_run_time=now,
                replace_existing=True,
            )
        if self.watch.metric_rules and self.watch.metric_sources:
            self.scheduler.add_job(
                self._tick_metrics,
                "interval",
                id="metrics",
                seconds=m.cloudwatch.poll_interval.total_seconds(),
                next_run_time=now,
                replace_existing=True,
            )
        self.scheduler.add_job(
            self._drain,
            "interval",
            id="drain",
            seconds=m.notify.drain_interval.total_seconds(),
            next_run_time=now,
            replace_existing=True,
        )
        self.scheduler.add_job(
            self._maintenance, "interval", id="maintenance", minutes=10, replace_existing=True
        )

    # -- reload ------------------------------------------------------------------------------
    def reload(self) -> None:
        self.notifier.reloading("reloading configuration")
        try:
            cfg = load_config(self.config_path)
        except ConfigError as exc:
            self.metrics.observe_reload(False)
            log.error("reload_failed", errors=exc.messages, kept="previous configuration")
            self.notifier.ready("reload failed; previous configuration kept")
            return
        if cfg.model.state_dir != self.cfg.model.state_dir or (
            cfg.model.metrics.listen != self.cfg.model.metrics.listen
        ):
            log.warning("reload_partial", ignored="state_dir and metrics.listen need a restart")
        self.scheduler.pause()
        try:
            # The new Watch restores its state from the store: the running ticks commit first.
            self._wait_idle()
            watch = build_watch(cfg, self.store, self.metrics, self.factory, self.stop)
            self.scheduler.remove_all_jobs()
            self.watch, self.cfg = watch, cfg
            self._schedule()
        except Exception as exc:
            self.metrics.observe_reload(False)
            log.exception("reload_failed", error=str(exc), kept="previous configuration")
        else:
            self.metrics.observe_reload(True)
            log.info("reloaded", rules=len(cfg.rules), sources=len(watch.sources))
        finally:
            self.scheduler.resume()
            self.notifier.ready(self._status())

    def _status(self) -> str:
        return f"watching {len(self.watch.sources)} source(s) with {len(self.cfg.rules)} rules"

    # -- the main loop -------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self.health.start()
        log.info(
            "started",
            version=__version__,
            metrics=f"{self.health.url}/metrics",
            rules=len(self.cfg.rules),
            sources=[s.key for s in self.watch.sources],
            plan=self.watch.sources[0].poller.plan.kind.value if self.watch.sources else None,
            sinks=sorted(self.watch.sinks),
        )
        for warning in self.cfg.warnings:
            log.warning("config_warning", warning=warning)
        self._schedule()
        self.scheduler.start()
        self.notifier.ready(self._status())
        wd = watchdog_interval(os.environ)
        beat = min(BEAT_SECONDS, wd.total_seconds()) if wd else BEAT_SECONDS
        while not self.stop.wait(beat):
            self.heartbeat.beat()
            self.notifier.watchdog()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            self.readiness()
        return self.shutdown()

    def shutdown(self) -> int:
        self.notifier.stopping("stopping: finishing the tick and draining")
        log.info("stopping")
        self.scheduler.shutdown(wait=True)
        deadline = time.monotonic() + DRAIN_ON_STOP_SECONDS
        while time.monotonic() < deadline:
            report = self.watch.drain(deadline)
            if report.outbox.pending == 0 or report.delivered == 0:
                break
        self.health.stop()
        self.store.close()
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self.stop.set()

        def on_hup(signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)


def run_daemon(config_path: Path | None) -> int:
    cfg = load_config(config_path)
    configure_logging(cfg.model.log.level, cfg.model.log.format)
    return Daemon(config_path, cfg).run()


def run_once(config_path: Path | None) -> int:
    """One tick of every source and one drain; exit 1 if a source failed."""
    cfg = load_config(config_path)
    configure_logging(cfg.model.log.level, cfg.model.log.format)
    stop = threading.Event()
    Path(cfg.model.state_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    store = SqliteStore.open(state_path(cfg))
    try:
        watch = build_watch(cfg, store, Metrics(version=__version__), SessionFactory(), stop)
        failed = [r.source for r in (watch.tick(s) for s in watch.sources) if not r.complete]
        alarm_tick = watch.tick_metrics()
        if alarm_tick is not None and alarm_tick.skipped:
            failed.append("cloudwatch")
        report = watch.drain()
        summary: dict[str, Any] = {
            "sources": len(watch.sources),
            "failed": failed,
            "delivered": report.delivered,
            "pending": report.outbox.pending,
        }
        log.info("once_done", **summary)
        return 1 if failed else 0
    finally:
        store.close()
