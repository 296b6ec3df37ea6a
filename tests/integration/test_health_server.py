"""The health server over real HTTP on 127.0.0.1, any free port."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from veilleur.observe.health import HealthServer, Heartbeat
from veilleur.observe.metrics import Metrics

pytestmark = pytest.mark.integration


@dataclass
class World:
    """What the probes look at: a fake clock and a readiness verdict the test sets."""

    now: float = 5000.0
    ready: bool = True
    reasons: list[str] = field(default_factory=lambda: ["config loaded", "store open"])

    def clock(self) -> float:
        return self.now

    def readiness(self) -> tuple[bool, list[str]]:
        return self.ready, list(self.reasons)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def server(world: World) -> Iterator[HealthServer]:
    metrics = Metrics()
    metrics.observe_poll("cloudtrail", "123456789012", "us-east-1", "ok", 0.4, 1_767_268_800.0)
    srv = HealthServer.from_listen(
        "127.0.0.1:0", metrics, Heartbeat(90, world.clock), world.readiness
    )
    srv.start()
    yield srv
    srv.stop()


def fetch(srv: HealthServer, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(srv.url + path, timeout=10) as resp:  # noqa: S310 - http to ourselves
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read().decode()


def test_binds_an_ephemeral_port_on_loopback(server: HealthServer) -> None:
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0
    assert server.url == f"http://127.0.0.1:{port}"


def test_metrics_in_exposition_format(server: HealthServer) -> None:
    status, ctype, body = fetch(server, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=")
    assert "# TYPE veilleur_polls_total counter" in body
    assert (
        'veilleur_polls_total{account="123456789012",outcome="ok",'
        'region="us-east-1",source="cloudtrail"} 1.0'
    ) in body
    assert "veilleur_build_info{" in body


def test_healthz_follows_the_main_loop_heartbeat(server: HealthServer, world: World) -> None:
    assert fetch(server, "/healthz")[::2] == (200, "ok\n")
    world.now += 91  # the main loop has not beaten for longer than the bound
    status, _, body = fetch(server, "/healthz")
    assert status == 503
    assert "main loop silent for 91s" in body
    server.heartbeat.beat()
    assert fetch(server, "/healthz")[0] == 200


def test_readyz_lists_reasons_ready_and_not(server: HealthServer, world: World) -> None:
    assert fetch(server, "/readyz") == (
        200,
        "text/plain; charset=utf-8",
        "ready\nconfig loaded\nstore open\n",
    )
    world.ready = False
    world.reasons = ["cloudtrail 123456789012/us-east-1: last success 14m ago (bound 5m)"]
    status, _, body = fetch(server, "/readyz?verbose=1")
    assert status == 503
    assert body == "not ready\ncloudtrail 123456789012/us-east-1: last success 14m ago (bound 5m)\n"


def test_unknown_path_is_404(server: HealthServer) -> None:
    assert fetch(server, "/admin")[::2] == (404, "not found\n")
    assert fetch(server, "/")[0] == 404


def test_stop_releases_the_port_and_is_idempotent(world: World) -> None:
    srv = HealthServer(Metrics(), Heartbeat(90, world.clock), world.readiness)
    with srv:
        host, port = srv.address
        assert fetch(srv, "/healthz")[0] == 200
    srv.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.address
    # The same port can be bound again at once: the listening socket was closed.
    again = HealthServer(Metrics(), Heartbeat(90, world.clock), world.readiness, host, port)
    with again:
        assert again.address == (host, port)
        assert fetch(again, "/healthz")[0] == 200


def test_start_twice_is_refused(server: HealthServer) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
