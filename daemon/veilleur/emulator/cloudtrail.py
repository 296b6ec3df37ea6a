"""A CloudTrail ``LookupEvents`` emulator (moto has none) for tests, the demo and bench/.

    with CloudTrailEmulator(clock=clock) as emu:
        emu.add_events(records, delay=60.0)
        client = boto3.client("cloudtrail", endpoint_url=emu.url, ...)
        emu.inject_fault(Fault(FaultKind.RESET, count=1))
        emu.stats().for_scope("123456789012", "us-east-1").pages

Out of process, the same through the admin endpoint: ``POST /_emulator/events``,
``POST /_emulator/faults``, ``GET /_emulator/stats``, ``POST /_emulator/reset`` (see
``cloudtrail_http``), or ``python -m veilleur.emulator --port 4599``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Self

from veilleur.emulator.cloudtrail_admin import handle_admin
from veilleur.emulator.cloudtrail_control import (
    Counters,
    DelayModel,
    EmulatorStats,
    Fault,
    FaultKind,
    FaultQueue,
    Outcome,
    RateLimit,
    RateLimiter,
)
from veilleur.emulator.cloudtrail_events import (
    AddResult,
    EventSpec,
    Resource,
    Scope,
    StoredEvent,
    build_event,
)
from veilleur.emulator.cloudtrail_http import EmulatorHTTPServer, Reply
from veilleur.emulator.cloudtrail_store import (
    HORIZON_SECONDS,
    EventStore,
    LookupApiError,
    parse_query,
)

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
LOOKUP_EVENTS = TARGET_PREFIX + "LookupEvents"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/[^/,\s]+/aws4_request")
_UNKNOWN = Scope("unknown", "unknown")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    default_account: str = DEFAULT_ACCOUNT
    accounts: Mapping[str, str] = field(default_factory=dict)  # access key id -> account id
    default_region: str = DEFAULT_REGION  # for records without awsRegion
    rate_limit: RateLimit = field(default_factory=RateLimit)
    delay_model: DelayModel | None = None  # None: events visible at their eventTime
    seed: int = 0
    horizon_s: float = HORIZON_SECONDS


def scope_from_authorization(
    header: str | None, accounts: Mapping[str, str], default: str
) -> Scope:
    """(account, region) from a SigV4 ``Authorization`` header's credential scope."""
    match = _CREDENTIAL.search(header or "")
    if match is None:
        raise LookupApiError(
            "MissingAuthenticationTokenException", "Missing or malformed SigV4 credential", 403
        )
    access_key, region = match.groups()
    return Scope(accounts.get(access_key, default), region)


class CloudTrailEmulator:
    """The emulator's state and request handling, plus its HTTP server's lifecycle.

    Thread-safe: server threads and the feeding test share one lock."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or EmulatorConfig()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._store = EventStore()
        self._limiter = RateLimiter(self.config.rate_limit)
        self._faults = FaultQueue()
        self._counters = Counters()
        self._rng = random.Random(self.config.seed)
        self._generation = 0
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = EmulatorHTTPServer((self.config.host, self.config.port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- feeding, faults, counters -----------------------------------------------------

    def add_event(
        self,
        record: Mapping[str, Any],
        *,
        delay: float | None = None,
        visible_at: float | None = None,
        region: str | None = None,
        account: str | None = None,
        resources: Iterable[Resource] | None = None,
    ) -> bool:
        """Add one record; False if its eventID is already stored for its scope."""
        spec = EventSpec(record, delay, visible_at, region, account, resources)
        return self.add_specs([spec]).added == 1

    def add_events(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        delay: float | None = None,
        visible_at: float | None = None,
        region: str | None = None,
        account: str | None = None,
    ) -> AddResult:
        """Add CloudTrail records. Each is visible from ``visible_at`` if given, else from
        its eventTime + ``delay`` (else + a delay drawn from the config's ``delay_model``).
        Scope: ``account``/``region`` if given, else the record's ``recipientAccountId``/
        ``awsRegion``, else the defaults. All or nothing: raises ``InvalidRecord``."""
        return self.add_specs(EventSpec(r, delay, visible_at, region, account) for r in records)

    def add_specs(self, specs: Iterable[EventSpec]) -> AddResult:
        """Add records with per-record settings; all or nothing (raises ``InvalidRecord``).
        A record whose eventID its scope already holds is skipped and counted."""
        specs = list(specs)
        with self._lock:
            built: list[StoredEvent] = []
            for spec in specs:
                delay = spec.delay
                if delay is None and spec.visible_at is None and self.config.delay_model:
                    delay = self.config.delay_model.sample(self._rng)
                built.append(
                    build_event(
                        spec.record,
                        scope=self._scope_of(spec.record, spec.region, spec.account),
                        visible_at=spec.visible_at,
                        delay=delay or 0.0,
                        resources=spec.resources,
                    )
                )
            added = sum(1 for event in built if self._store.add(event))
        return AddResult(added, len(built) - added)

    def _scope_of(
        self, record: Mapping[str, Any], region: str | None, account: str | None
    ) -> Scope:
        rec_region, rec_account = record.get("awsRegion"), record.get("recipientAccountId")
        if region is None:
            region = rec_region if isinstance(rec_region, str) else self.config.default_region
        if account is None:
            account = rec_account if isinstance(rec_account, str) else self.config.default_account
        return Scope(account, region)

    def add_stored(self, events: Iterable[StoredEvent]) -> int:
        """Add events exactly as given, for fault injection: e.g. a ``StoredEvent`` whose
        ``cloudtrail_event`` text is not valid JSON (``dataclasses.replace`` on one made by
        ``build_event``). Returns how many were new."""
        with self._lock:
            return sum(1 for event in events if self._store.add(event))

    def forget_before(self, event_time: float) -> int:
        """Drop stored events older than ``event_time`` (long simulations); see EventStore."""
        with self._lock:
            return self._store.forget_before(event_time)

    def inject_fault(self, fault: Fault) -> None:
        """Queue a fault for the next ``fault.count`` LookupEvents requests it applies to."""
        with self._lock:
            self._faults.add(fault)

    def stats(self) -> EmulatorStats:
        with self._lock:
            return self._counters.snapshot(
                self._store.count(),
                self._store.visible_count(self._clock()),
                self._faults.pending(),
            )

    def reset(
        self, *, events: bool = True, faults: bool = True, stats: bool = True, rate: bool = True
    ) -> None:
        """Forget the chosen state. Clearing events also invalidates every NextToken."""
        with self._lock:
            if events:
                self._store.clear()
                self._generation += 1
                self._rng = random.Random(self.config.seed)
            if faults:
                self._faults.clear()
            if stats:
                self._counters.clear()
            if rate:
                self._limiter.reset()

    def now(self) -> float:
        """The emulator's clock (the injected one)."""
        return self._clock()

    def handle_admin(self, method: str, path: str, body: bytes) -> Reply:
        return handle_admin(self, method, path, body)

    # ---- the API -----------------------------------------------------------------------

    def handle_api(self, target: str | None, authorization: str | None, body: bytes) -> Reply:
        """Answer one CloudTrail JSON request (the HTTP layer only moves bytes)."""
        with self._lock:
            try:
                scope = scope_from_authorization(
                    authorization, self.config.accounts, self.config.default_account
                )
            except LookupApiError as exc:
                self._counters.request(_UNKNOWN, Outcome.ERROR)
                return Reply.error(exc)
            fault = self._faults.take(scope)
            if fault is not None:
                self._counters.fault(fault.kind)
        if fault is not None and fault.kind is FaultKind.SLOW:
            self._sleep(fault.delay_s)
        with self._lock:
            return self._answer(scope, fault, target, body)

    def _answer(self, scope: Scope, fault: Fault | None, target: str | None, body: bytes) -> Reply:
        if fault is not None and fault.kind is not FaultKind.SLOW:
            outcome = Outcome.THROTTLED if fault.kind is FaultKind.THROTTLE else Outcome.FAULT
            self._counters.request(scope, outcome)
            return Reply.fault(fault.kind)
        now = self._clock()
        if not self._limiter.try_acquire(scope, now):
            self._counters.request(scope, Outcome.THROTTLED)
            return Reply.fault(FaultKind.THROTTLE)
        try:
            if target != LOOKUP_EVENTS:
                raise LookupApiError(
                    "UnknownOperationException", f"Unknown operation {target!s:.100}"
                )
            try:
                payload = json.loads(body or b"{}")
            except ValueError as exc:
                raise LookupApiError("SerializationException", "body is not JSON") from exc
            query = parse_query(payload)
            page = self._store.lookup(
                query, scope, now, generation=self._generation, horizon=self.config.horizon_s
            )
        except LookupApiError as exc:
            self._counters.request(scope, Outcome.ERROR)
            return Reply.error(exc)
        self._counters.request(scope, Outcome.OK, len(page.events))
        return Reply(200, page.to_api())


def main(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground until SIGINT/SIGTERM; print its URL."""
    parser = argparse.ArgumentParser(description="CloudTrail LookupEvents emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account", default=DEFAULT_ACCOUNT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--realistic-delay", action="store_true", help="draw delivery delays from DelayModel()"
    )
    args = parser.parse_args(argv)
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        default_account=args.account,
        seed=args.seed,
        delay_model=DelayModel() if args.realistic_delay else None,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with CloudTrailEmulator(config) as emu:
        print(emu.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
