"""The admin endpoint, for a daemon or test driving the emulator from another process.

POST /_emulator/events   {"events": [record | {"record": {...}, "delay": s,
                          "visible_at": epoch, "region": r, "account": a,
                          "resources": [{"ResourceType": t, "ResourceName": n}]}],
                          "delay": s, "visible_at": epoch, "region": r, "account": a}
                         ("Records" is accepted for "events": a CloudTrail log file)
                         -> {"added": n, "duplicates": m}
POST /_emulator/faults   {"kind": "internal_error" | "service_unavailable" | "throttle"
                          | "slow" | "reset", "count": n, "delay_s": s, "account": a,
                          "region": r}   or {"faults": [...]}   -> {"pending": [...]}
POST /_emulator/reset    {} or {"events": bool, "faults": bool, "stats": bool, "rate": bool}
GET  /_emulator/stats    counters (see EmulatorStats.to_json)
GET  /_emulator/health   {"ok": true, "now": epoch seconds of the emulator's clock}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from veilleur.emulator.cloudtrail_control import Fault
from veilleur.emulator.cloudtrail_events import EventSpec, Resource
from veilleur.emulator.cloudtrail_http import ADMIN_PREFIX, Reply
from veilleur.model import InvalidRecord

if TYPE_CHECKING:
    from veilleur.emulator.cloudtrail import CloudTrailEmulator


class AdminError(ValueError):
    """A bad admin request (answered 400)."""


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminError(f"{key} must be a number")
    return float(value)


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{key} must be a string")
    return value


def _resources(data: Mapping[str, Any]) -> list[Resource] | None:
    value = data.get("resources")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise AdminError("resources must be a list of objects")
    return [Resource(r.get("ResourceType"), r.get("ResourceName")) for r in value]


def parse_event_specs(body: object) -> list[EventSpec]:
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    items = body.get("events", body.get("Records"))
    if not isinstance(items, list):
        raise AdminError('body needs a list under "events" (or "Records")')
    specs = []
    for item in items:
        if not isinstance(item, dict):
            raise AdminError("each event is a JSON object")
        wrapped = "record" in item
        settings = item if wrapped else {}

        def pick(key: str, settings: Mapping[str, Any] = settings) -> Any:
            return settings[key] if key in settings else body.get(key)

        merged = {k: pick(k) for k in ("delay", "visible_at", "region", "account")}
        specs.append(
            EventSpec(
                record=item["record"] if wrapped else item,
                delay=_number(merged, "delay"),
                visible_at=_number(merged, "visible_at"),
                region=_text(merged, "region"),
                account=_text(merged, "account"),
                resources=_resources(settings),
            )
        )
    return specs


def parse_faults(body: object) -> list[Fault]:
    if isinstance(body, dict) and "faults" in body:
        items = body["faults"]
        if not isinstance(items, list):
            raise AdminError('"faults" must be a list')
    else:
        items = [body]
    try:
        return [Fault.from_json(item) for item in items]
    except ValueError as exc:
        raise AdminError(str(exc)) from exc


def handle_admin(emu: CloudTrailEmulator, method: str, path: str, body: bytes) -> Reply:
    name = path[len(ADMIN_PREFIX) :].split("?", 1)[0].rstrip("/")
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        return Reply.admin(400, {"message": "body is not JSON"})
    try:
        if (method, name) == ("GET", "stats"):
            return Reply.admin(200, emu.stats().to_json())
        if (method, name) == ("GET", "health"):
            return Reply.admin(200, {"ok": True, "now": emu.now()})
        if (method, name) == ("POST", "events"):
            result = emu.add_specs(parse_event_specs(payload))
            return Reply.admin(200, {"added": result.added, "duplicates": result.duplicates})
        if (method, name) == ("POST", "faults"):
            for fault in parse_faults(payload):
                emu.inject_fault(fault)
            return Reply.admin(200, {"pending": [f.to_json() for f in emu.stats().faults_pending]})
        if (method, name) == ("POST", "reset"):
            if not isinstance(payload, dict):
                raise AdminError("body must be a JSON object")
            parts = {k: payload.get(k, True) for k in ("events", "faults", "stats", "rate")}
            if not all(isinstance(v, bool) for v in parts.values()):
                raise AdminError("reset flags must be booleans")
            emu.reset(**parts)
            return Reply.admin(200, {"reset": parts})
    except (AdminError, InvalidRecord) as exc:
        return Reply.admin(400, {"__type": type(exc).__name__, "message": str(exc)})
    return Reply.admin(404, {"message": f"no admin route {method} {path:.200}"})
