"""The watchman's own pulse: metrics, health endpoints, systemd notifications and logs."""

from veilleur.observe.health import HealthServer, Heartbeat, Readiness, parse_listen
from veilleur.observe.logs import configure_logging, get_logger, redact, reset_logging
from veilleur.observe.metrics import (
    CallOutcome,
    EventOutcome,
    Metrics,
    PollOutcome,
    SuppressReason,
)
from veilleur.observe.systemd import Notifier, NotifyReceiver, watchdog_interval

__all__ = [
    "CallOutcome",
    "EventOutcome",
    "HealthServer",
    "Heartbeat",
    "Metrics",
    "Notifier",
    "NotifyReceiver",
    "PollOutcome",
    "Readiness",
    "SuppressReason",
    "configure_logging",
    "get_logger",
    "parse_listen",
    "redact",
    "reset_logging",
    "watchdog_interval",
]
