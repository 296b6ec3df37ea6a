"""Alerts as texts: e-mail subject and body, SMS, the JSON document, SNS attributes. Pure.

Every string that reaches a human goes through :func:`sanitize` (control characters and
HTML-significant characters escaped, whitespace collapsed, truncated with an ellipsis):
group values, distinct values, user agents and request parameters come from CloudTrail
records and are attacker-controlled; titles and descriptions may be templated from them.
The JSON document keeps exact values (automation acts on them) but bounds every string,
list and the total size; it is ASCII-only JSON, so quotes, control and invisible characters
travel as escapes and cannot break its structure or the transport.
"""

from __future__ import annotations

import html
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from veilleur.alerts import Alert, AlertKind
from veilleur.model import format_time

SUBJECT_MAX_CHARS = 99  # SNS: "less than 100 characters"
SMS_MAX_BYTES = 140  # one SMS part in ASCII
ALERT_JSON_MAX_BYTES = 32 * 1024  # default bound of the alert document
ALERT_JSON_MIN_BYTES = 4096  # the minimal document (identity fields) always fits
EMAIL_MAX_CHARS = 16_000

_VALUE_CHARS = 200  # one value in the e-mail text
_LIST_ITEMS = 20  # values per distinct key, sample ids, resources in the e-mail text
_MAP_KEYS = 10  # distinct keys, detail keys in the e-mail text
_JSON_INT_LIMIT = 2**63  # EventBridge rejects JSON integers outside int64
_JSON_DEPTH = 8
_ATTRIBUTE_CHARS = 256
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_DETAILS = frozenset(
    {"old_state", "new_state", "reason", "datapoints", "suppressed", "window", "within"}
)

# (items kept per list, characters kept per string) tried in turn until the document fits.
_TRIM_LEVELS = ((100, 1024), (50, 512), (20, 256), (10, 128), (5, 64), (2, 64), (0, 64))


# -- sanitizing ---------------------------------------------------------------------------


def _valid_unicode(text: str) -> str:
    """Lone surrogates (legal in a parsed JSON string, not in UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _ascii_fold(text: str) -> str:
    """Letters with accents lose them (é -> e); what has no ASCII form becomes '?'."""
    out: list[str] = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        if ch.isspace():
            out.append(" ")
            continue
        folded = "".join(
            c for c in unicodedata.normalize("NFKD", ch) if c.isascii() and c.isprintable()
        )
        out.append(folded or "?")
    return "".join(out)


def _escape_char(ch: str, html_entities: bool = True) -> str:
    if html_entities and ch in "&<>\"'":
        return html.escape(ch, quote=True)
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():  # false for Cc, Cf (bidi overrides, zero-width), Cs, Co, Cn
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def sanitize(
    text: object, limit: int, *, ascii_only: bool = False, html_entities: bool = True
) -> str:
    """``text`` made safe to show: whitespace runs collapsed to one space, control and
    invisible characters escaped (``\\x1b``, ``\\u202e``), ``& < > " '`` as HTML entities,
    at most ``limit`` characters (an ellipsis marks a cut; an escape is never split).
    ``ascii_only`` folds to ASCII first (SMS). ``html_entities=False`` is for veilleur's
    own texts (rule titles, descriptions, reasons): still one safe line, but readable."""
    if limit <= 0:
        return ""
    s = _valid_unicode(text if isinstance(text, str) else str(text))
    if ascii_only:
        s = _ascii_fold(s)
    s = " ".join(s.split())[: limit + 1]  # each kept character yields >= 1 output character
    pieces = [_escape_char(ch, html_entities) for ch in s]
    if sum(len(p) for p in pieces) <= limit:
        return "".join(pieces)
    ellipsis = "..." if ascii_only else "\u2026"
    if limit <= len(ellipsis):
        return ellipsis[:limit]
    out: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > limit - len(ellipsis):
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ellipsis


def _plain(text: object, limit: int) -> str:
    """For machine-matched values (SNS attributes): printable, one line, bounded, but not
    HTML-escaped, so that subscription filter policies match the exact value."""
    s = " ".join(_valid_unicode(str(text)).split())
    return "".join(ch for ch in s if ch.isprintable())[:limit]


# -- the parts every text shares ------------------------------------------------------------


def _group_text(alert: Alert) -> str:
    return " ".join(value for _, value in alert.group)


def _window(alert: Alert) -> str | None:
    for key in ("window", "within"):
        value = alert.details.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _states(alert: Alert) -> tuple[str, str]:
    old = alert.details.get("old_state")
    new = alert.details.get("new_state")
    return (str(old) if old not in (None, "") else "?", str(new) if new not in (None, "") else "?")


def _counter(alert: Alert, ascii_only: bool) -> str:
    """The short middle part: "(6 in 5m)", "(OK -> ALARM)", "(+312 suppressed in 5m)"."""
    if alert.kind is AlertKind.ALARM:
        old, new = _states(alert)
        old_s = sanitize(old, 20, ascii_only=ascii_only)
        return f"({old_s} -> {sanitize(new, 20, ascii_only=ascii_only)})"
    window = _window(alert)
    win = f" in {sanitize(window, 12, ascii_only=ascii_only)}" if window else ""
    if alert.kind is AlertKind.SUMMARY:
        suppressed = alert.details.get("suppressed", alert.count)
        return f"(+{sanitize(suppressed, 12, ascii_only=ascii_only)} suppressed{win})"
    if win or alert.count != 1:
        return f"({alert.count}{win})" if win else f"({alert.count} events)"
    return ""


def _share(title: str, group: str, budget: int, ascii_only: bool) -> tuple[str, str]:
    """Title and group values sanitized so that "title group" holds in ``budget``; the
    group keeps at least 15 characters when both are long, the title the rest."""
    title_s = sanitize(title, budget, ascii_only=ascii_only)
    group_s = sanitize(group, budget, ascii_only=ascii_only) if group else ""
    if not group_s or len(title_s) + 1 + len(group_s) <= budget:
        return title_s, group_s
    group_budget = max(min(len(group_s), 15), budget - 1 - len(title_s))
    group_budget = min(group_budget, budget // 2)
    title_budget = budget - 1 - group_budget
    return (
        sanitize(title, title_budget, ascii_only=ascii_only),
        sanitize(group, group_budget, ascii_only=ascii_only),
    )


def _compose(head: str, title: str, middle: str, group: str, limit: int, ascii_only: bool) -> str:
    """``head + title + middle + group`` in at most ``limit`` characters."""
    middle_part = f" {middle}" if middle else ""
    budget = limit - len(head) - len(middle_part)
    title_s, group_s = _share(title, group, max(budget, 0), ascii_only)
    text = head + title_s + middle_part + (f" {group_s}" if group_s else "")
    return text[:limit]


def subject(alert: Alert) -> str:
    """E-mail subject: < 100 printable characters, one line."""
    head = f"[{alert.severity.name}] "
    if alert.kind is AlertKind.SUMMARY:
        head += "Summary: "
    middle = _counter(alert, ascii_only=False)
    return _compose(head, alert.title, middle, _group_text(alert), SUBJECT_MAX_CHARS, False)


def sms_text(alert: Alert) -> str:
    """At most 140 ASCII characters: severity, title, count or state, group, a reference."""
    ref = f" ref {sanitize(alert.notification_id[:8], 8, ascii_only=True)}"
    head = f"{alert.severity.name}: "
    middle = _counter(alert, ascii_only=True)
    where = ""
    if alert.account:
        where = f" acct {sanitize(alert.account, 14, ascii_only=True)}"
    limit = SMS_MAX_BYTES - len(ref) - len(where)
    text = _compose(head, alert.title, middle, _group_text(alert), limit, True) + where + ref
    return text.encode("ascii", "replace")[:SMS_MAX_BYTES].decode("ascii")


# -- e-mail -----------------------------------------------------------------------------------


def _json_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(_bounded(value, 10, 64, _Trim(), 0), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def email_text(alert: Alert) -> str:
    """The full text: what fired, when, for whom, what to do, and the ids to deduplicate."""

    def v(text: object, limit: int = _VALUE_CHARS) -> str:
        """Anything that came from a CloudTrail record: attacker-controlled."""
        return sanitize(text, limit)

    def own(text: object, limit: int = _VALUE_CHARS) -> str:
        """veilleur's own words (rule files, evaluator): control characters only."""
        return sanitize(text, limit, html_entities=False)

    lines = [own(alert.title, 300), ""]
    fields: list[tuple[str, str]] = [
        ("Severity", alert.severity.label),
        ("Rule", v(alert.rule_id)),
        ("Kind", alert.kind.value),
    ]
    if alert.kind is AlertKind.ALARM:
        old, new = _states(alert)
        fields.append(("State", f"{v(old, 40)} -> {v(new, 40)}"))
        if "reason" in alert.details:
            fields.append(("Reason", own(alert.details["reason"], 1000)))
    elif alert.kind is AlertKind.SUMMARY:
        suppressed = alert.details.get("suppressed", alert.count)
        window = _window(alert)
        fields.append(
            (
                "Suppressed",
                f"{v(suppressed, 20)} alerts" + (f" in {v(window, 20)}" if window else ""),
            )
        )
    else:
        window = _window(alert)
        fields.append(("Count", f"{alert.count}" + (f" within {v(window, 20)}" if window else "")))
    fields += [
        ("First seen", format_time(alert.first_seen)),
        ("Last seen", format_time(alert.last_seen)),
        ("Account", v(alert.account or "-", 64)),
        ("Region", v(alert.region or "-", 64)),
    ]
    width = max(len(name) for name, _ in fields) + 2
    lines += [f"{name + ':':<{width}}{value}" for name, value in fields]

    if alert.group:
        lines += ["", "Group:"]
        lines += [f"  {v(k, 100)} = {v(val)}" for k, val in alert.group[:_MAP_KEYS]]
    if alert.distinct:
        lines += ["", "Distinct values:"]
        for key, values in list(alert.distinct.items())[:_MAP_KEYS]:
            shown = ", ".join(v(x, 120) for x in values[:_LIST_ITEMS])
            more = f", ... ({len(values) - _LIST_ITEMS} more)" if len(values) > _LIST_ITEMS else ""
            lines.append(f"  {v(key, 100)} ({len(values)}): {shown}{more}")
    if alert.sample_event_ids:
        lines += ["", "Sample event ids:"]
        lines += [f"  - {v(x, 100)}" for x in alert.sample_event_ids[:_LIST_ITEMS]]
    if alert.resources:
        lines += ["", "Resources:"]
        lines += [f"  - {v(x, 300)}" for x in alert.resources[:_LIST_ITEMS]]
    if alert.kind is AlertKind.ALARM and "datapoints" in alert.details:
        lines += ["", f"Datapoints: {own(_json_value(alert.details['datapoints']), 1000)}"]
    other = {k: val for k, val in alert.details.items() if k not in _SHOWN_DETAILS}
    if other:
        lines += ["", "Details:"]
        lines += [
            f"  {own(k, 60)}: {own(_json_value(val), 500)}"
            for k, val in list(other.items())[:_MAP_KEYS]
        ]
    if alert.description:
        lines += ["", own(alert.description, 2000)]
    if alert.tags:
        lines += ["", "Tags: " + ", ".join(v(t, 60) for t in alert.tags[:_LIST_ITEMS])]
    lines += ["", f"Runbook: {own(alert.runbook, 500) if alert.runbook else '-'}"]
    footer = [
        "",
        f"Notification id: {v(alert.notification_id, 100)}",
        f"Fingerprint: {v(alert.fingerprint, 100)}",
    ]
    text = "\n".join(lines)
    if len(text) > EMAIL_MAX_CHARS:
        text = text[:EMAIL_MAX_CHARS].rsplit("\n", 1)[0] + "\n[... truncated]"
    return text + "\n" + "\n".join(footer) + "\n"


# -- the alert document -----------------------------------------------------------------------


class _Trim:
    """Remembers whether bounding cut anything (local to one call)."""

    __slots__ = ("cut",)

    def __init__(self) -> None:
        self.cut = False


def _bounded(value: Any, items: int, chars: int, trim: _Trim, depth: int) -> Any:
    """A JSON-safe copy: strings valid UTF-8 and at most ``chars`` (a cut ends with an
    ellipsis so a truncated user name never equals a real one), lists and objects at most
    ``items`` entries (objects at least 10 keys), no NaN/Infinity, int64 integers."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_JSON_INT_LIMIT <= value < _JSON_INT_LIMIT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > _JSON_DEPTH:
        trim.cut = True
        return "\u2026"
    if isinstance(value, str):
        text = _valid_unicode(value)
        if len(text) > chars:
            trim.cut = True
            return text[: max(chars - 1, 0)] + "\u2026"
        return text
    if isinstance(value, Mapping):
        keys = list(value.keys())
        keep = max(items, 10)
        if len(keys) > keep:
            trim.cut = True
        return {
            _bounded(str(k), 10, 128, trim, depth + 1): _bounded(
                value[k], items, chars, trim, depth + 1
            )
            for k in keys[:keep]
        }
    if isinstance(value, list | tuple):
        if len(value) > items:
            trim.cut = True
        return [_bounded(x, items, chars, trim, depth + 1) for x in list(value)[:items]]
    return _bounded(str(value), items, chars, trim, depth)


def _dumps(doc: Mapping[str, Any]) -> str:
    # ASCII-only: non-ASCII and invisible characters travel as \uXXXX escapes.
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


_IDENTITY = (
    ("notification_id", 128),
    ("fingerprint", 128),
    ("rule_id", 128),
    ("title", 200),
    ("severity", 16),
    ("kind", 16),
    ("count", 0),
    ("first_seen", 40),
    ("last_seen", 40),
    ("account", 64),
    ("region", 64),
)


def _minimal(full: Mapping[str, Any]) -> dict[str, Any]:
    trim = _Trim()
    doc = {key: _bounded(full.get(key), 0, chars, trim, 1) for key, chars in _IDENTITY}
    doc["truncated"] = True
    return doc


def alert_json(alert: Alert, max_bytes: int = ALERT_JSON_MAX_BYTES) -> str:
    """``Alert.to_dict()`` as compact JSON of at most ``max_bytes`` UTF-8 bytes. Lists
    (distinct values, samples, resources, details) and strings are cut further and further
    until it fits, then only the identity fields are kept; ``"truncated": true`` says so."""
    if max_bytes < ALERT_JSON_MIN_BYTES:
        raise ValueError(f"max_bytes must be at least {ALERT_JSON_MIN_BYTES}, got {max_bytes}")
    full = alert.to_dict()
    for items, chars in _TRIM_LEVELS:
        trim = _Trim()
        doc: dict[str, Any] = {
            key: _bounded(val, items, chars, trim, 1) for key, val in full.items()
        }
        if trim.cut:
            doc["truncated"] = True
        text = _dumps(doc)
        if len(text.encode("utf-8")) <= max_bytes:
            return text
    return _dumps(_minimal(full))


def subscriber_json(alert: Alert, max_bytes: int = ALERT_JSON_MAX_BYTES) -> str:
    """What SNS's SQS, Lambda and HTTP(S) subscribers get: the alert document plus
    ``"texts": {"subject", "sms", "email"}``, the rendered texts (SNS shows each protocol
    only its own key, so a consumer forwarding to chat or a test can read them here).
    The e-mail text is left out when it does not fit in ``max_bytes`` with the document."""
    texts = {"subject": subject(alert), "sms": sms_text(alert), "email": email_text(alert)}
    for names in (("subject", "sms", "email"), ("subject", "sms")):
        tail = ',"texts":' + _dumps({name: texts[name] for name in names}) + "}"
        room = max_bytes - len(tail)
        if room >= ALERT_JSON_MIN_BYTES:
            return alert_json(alert, room)[:-1] + tail
    return alert_json(alert, max_bytes)


def message_attributes(alert: Alert) -> dict[str, str]:
    """SNS message attributes for subscription filter policies (name -> String value).
    Absent values are left out (SNS rejects empty attribute values)."""
    attrs = {
        "severity": alert.severity.label,
        "rule": alert.rule_id,
        "kind": alert.kind.value,
        "notification_id": alert.notification_id,
        "account": alert.account or "",
        "region": alert.region or "",
    }
    if alert.kind is AlertKind.ALARM and alert.details.get("new_state") is not None:
        attrs["state"] = str(alert.details["new_state"])
    cleaned = {name: _plain(value, _ATTRIBUTE_CHARS) for name, value in attrs.items()}
    return {name: value for name, value in cleaned.items() if value}
