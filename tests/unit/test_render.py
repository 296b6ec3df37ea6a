"""Texts made from alerts: bounded, escaped, one line where it must be, complete where it can."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veilleur.alerts import Alert, AlertKind
from veilleur.model import Severity
from veilleur.notify import render
from veilleur.notify.render import sanitize

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


def alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "rule_id": "console-signin-failures",
        "title": "Burst of failed console sign-ins",
        "severity": Severity.HIGH,
        "kind": AlertKind.THRESHOLD,
        "fingerprint": "0f" * 16,
        "notification_id": NID,
        "count": 6,
        "first_seen": T0,
        "last_seen": T0 + timedelta(minutes=4),
        "group": (("sourceIPAddress", "203.0.113.9"),),
        "distinct": {"userName": ("alice", "bob")},
        "sample_event_ids": ("ev-1", "ev-2"),
        "description": "Someone is guessing passwords.",
        "runbook": "https://runbooks.example/console",
        "account": "123456789012",
        "region": "us-east-1",
        "details": {"window": "5m"},
    }
    fields.update(overrides)
    return Alert(**fields)


ALARM = alert(
    rule_id="cpu-high",
    title="CPU above 80% on web",
    severity=Severity.CRITICAL,
    kind=AlertKind.ALARM,
    count=1,
    group=(),
    distinct={},
    details={
        "old_state": "OK",
        "new_state": "ALARM",
        "reason": "Threshold Crossed: 3 out of the last 5 datapoints were > 80.0",
        "datapoints": [81.5, float("nan"), 92.0],
    },
)
SUMMARY = alert(
    title="Alert storm: console-signin-failures",
    kind=AlertKind.SUMMARY,
    count=312,
    group=(),
    details={"suppressed": 312, "window": "5m"},
)
HOSTILE = "x\r\nBcc: evil@example.com\x1b[31m<script>alert('1')</script>\u202egnp.exe\u200b" * 3


def one_line_printable(text: str) -> bool:
    return text.isprintable() and "\n" not in text and "\r" not in text


# -- sanitize -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a\r\n\t  b", "a b"),
        ("<b>&'\"", "&lt;b&gt;&amp;&#x27;&quot;"),
        ("bell\x07", "bell\\x07"),
        ("rlo\u202e", "rlo\\u202e"),
        ("back\\slash", "back\\\\slash"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
    ],
)
def test_sanitize_escapes(raw: str, expected: str) -> None:
    assert sanitize(raw, 100) == expected


def test_sanitize_truncates_with_ellipsis_and_never_splits_an_escape() -> None:
    assert sanitize("abcdefghij", 5) == "abcd\u2026"
    assert sanitize("abcdefghij", 5, ascii_only=True) == "ab..."
    cut = sanitize("a&b" * 10, 8)
    assert len(cut) <= 8
    assert cut.endswith("\u2026")
    assert "&amp;" in cut
    assert not cut.rstrip("\u2026").endswith(("&", "&a", "&am", "&amp"))
    assert sanitize("anything", 0) == ""


def test_sanitize_ascii_folds_accents_and_replaces_the_rest() -> None:
    assert sanitize("José Łukasz 漢 🙂", 50, ascii_only=True) == "Jose ?ukasz ? ?"


@settings(max_examples=300)
@given(st.text(), st.integers(min_value=1, max_value=200), st.booleans())
def test_sanitize_output_is_bounded_single_line_and_has_no_raw_html(
    text: str, limit: int, ascii_only: bool
) -> None:
    out = sanitize(text, limit, ascii_only=ascii_only)
    assert len(out) <= limit
    assert one_line_printable(out) or out == ""
    assert not set(out) & set("<>\"'")
    out.encode("utf-8")  # no lone surrogates left
    if ascii_only:
        assert out.isascii()


# -- subject --------------------------------------------------------------------------------


def test_subject_reference_scenario() -> None:
    assert render.subject(alert()) == (
        "[HIGH] Burst of failed console sign-ins (6 in 5m) 203.0.113.9"
    )


def test_subject_alarm_and_summary() -> None:
    assert render.subject(ALARM) == "[CRITICAL] CPU above 80% on web (OK -> ALARM)"
    assert render.subject(SUMMARY) == (
        "[HIGH] Summary: Alert storm: console-signin-failures (+312 suppressed in 5m)"
    )


def test_subject_without_window_counts_events_and_single_events_show_no_count() -> None:
    assert "(6 events)" in render.subject(alert(details={}))
    single = render.subject(alert(kind=AlertKind.EVENT, count=1, details={}))
    assert single == "[HIGH] Burst of failed console sign-ins 203.0.113.9"


@pytest.mark.parametrize("kind", list(AlertKind))
def test_subject_stays_short_and_one_line_with_hostile_input(kind: AlertKind) -> None:
    a = alert(
        kind=kind,
        title="Sign-in " + HOSTILE,
        group=(("userName", HOSTILE), ("sourceIPAddress", HOSTILE)),
        details={"window": HOSTILE, "old_state": HOSTILE, "new_state": HOSTILE},
    )
    s = render.subject(a)
    assert len(s) < 100
    assert one_line_printable(s)
    assert s.startswith("[HIGH] ")
    assert "<script>" not in s
    assert "\x1b" not in s
    assert "\u202e" not in s


def test_subject_keeps_some_of_title_and_group_when_both_are_long() -> None:
    s = render.subject(alert(title="T" * 200, group=(("ip", "G" * 200),)))
    assert len(s) < 100
    assert s.count("T") >= 40
    assert s.count("G") >= 10


# -- SMS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [alert(), ALARM, SUMMARY], ids=["threshold", "alarm", "summary"])
def test_sms_is_short_ascii_with_severity_and_reference(a: Alert) -> None:
    text = render.sms_text(a)
    assert len(text.encode("utf-8")) <= 140
    assert text.isascii()
    assert one_line_printable(text)
    assert text.startswith(a.severity.name)
    assert text.endswith(f"ref {a.notification_id[:8]}")


def test_sms_reference_scenario() -> None:
    assert render.sms_text(alert()) == (
        "HIGH: Burst of failed console sign-ins (6 in 5m) 203.0.113.9 acct 123456789012"
        " ref 1b4e28ba"
    )


def test_sms_with_unicode_and_hostile_input_stays_within_140_bytes() -> None:
    a = alert(title="Connexion échouée 🙂 " * 10, group=(("u", "用户" * 50 + HOSTILE),))
    text = render.sms_text(a)
    assert len(text.encode("utf-8")) <= 140
    assert text.isascii()
    assert "ref 1b4e28ba" in text


# -- e-mail -----------------------------------------------------------------------------------


def test_email_text_has_everything_a_responder_needs() -> None:
    text = render.email_text(alert())
    for expected in (
        "Burst of failed console sign-ins",
        "Severity:   high",
        "Rule:       console-signin-failures",
        "Count:      6 within 5m",
        "First seen: 2026-01-01T12:00:00Z",
        "Last seen:  2026-01-01T12:04:00Z",
        "Account:    123456789012",
        "Region:     us-east-1",
        "sourceIPAddress = 203.0.113.9",
        "userName (2): alice, bob",
        "- ev-1",
        "Runbook: https://runbooks.example/console",
        f"Notification id: {NID}",
        "Someone is guessing passwords.",
    ):
        assert expected in text, expected


def test_email_text_alarm_and_summary() -> None:
    alarm = render.email_text(ALARM)
    assert "State:      OK -> ALARM" in alarm
    assert "Reason:     Threshold Crossed" in alarm
    assert "Datapoints: [81.5, null, 92.0]" in alarm
    summary = render.email_text(SUMMARY)
    assert "Suppressed: 312 alerts in 5m" in summary


def test_email_text_escapes_and_bounds_attacker_values() -> None:
    many = tuple(f"{HOSTILE}{i}" for i in range(500))
    text = render.email_text(alert(distinct={"userAgent": many}, group=(("u", HOSTILE),)))
    assert "<script>" not in text
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\r" not in text
    assert "Bcc: evil" not in text.splitlines()[0]
    assert all(not line.startswith("Bcc:") for line in text.splitlines())
    assert "(500): " in text
    assert "(480 more)" in text
    assert len(text) < render.EMAIL_MAX_CHARS + 500
    assert text.rstrip().endswith(f"Fingerprint: {'0f' * 16}")


# -- JSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [alert(), SUMMARY], ids=["threshold", "summary"])
def test_alert_json_is_the_alert_document_and_round_trips(a: Alert) -> None:
    text = render.alert_json(a)
    assert text == json.dumps(json.loads(text), separators=(",", ":"))  # compact, ASCII
    doc = json.loads(text)
    assert doc == a.to_dict()
    assert Alert.from_dict(doc) == a
    assert "truncated" not in doc


def test_alert_json_is_strict_json_for_nan_and_surrogates() -> None:
    a = alert(distinct={"userName": ("lone \ud800",)})
    doc = json.loads(render.alert_json(a), parse_constant=pytest.fail)
    assert doc["distinct"]["userName"] == ["lone \ufffd"]
    alarm = json.loads(render.alert_json(ALARM), parse_constant=pytest.fail)
    assert alarm["details"]["datapoints"] == [81.5, None, 92.0]
    assert render.alert_json(alert(title="é \u202e")).isascii()


@pytest.mark.parametrize("max_bytes", [4096, 20_000, render.ALERT_JSON_MAX_BYTES, 256 * 1024])
def test_alert_json_is_bounded_and_says_it_was_trimmed(max_bytes: int) -> None:
    big = alert(
        distinct={f"key{k}": tuple("v" * 3000 + str(i) for i in range(300)) for k in range(20)},
        sample_event_ids=tuple(f"ev-{i}" for i in range(1000)),
        details={"requestParameters": {"x": "y" * 100_000}},
    )
    text = render.alert_json(big, max_bytes)
    assert len(text.encode("utf-8")) <= max_bytes
    doc = json.loads(text)
    assert doc["truncated"] is True
    assert doc["notification_id"] == NID
    assert doc["rule_id"] == "console-signin-failures"


def test_truncated_strings_end_with_an_ellipsis_so_they_never_equal_a_real_value() -> None:
    doc = json.loads(render.alert_json(alert(group=(("userName", "a" * 5000),))))
    value = doc["group"]["userName"]
    assert value.endswith("\u2026")
    assert len(value) <= 1024


def test_alert_json_refuses_a_budget_below_the_minimal_document() -> None:
    with pytest.raises(ValueError, match="at least"):
        render.alert_json(alert(), 1000)


def test_minimal_document_fits_even_with_long_identity_fields() -> None:
    a = alert(title="漢" * 5000, rule_id="r" * 5000, distinct={"k": ("v" * 10**6,)})
    text = render.alert_json(a, render.ALERT_JSON_MIN_BYTES)
    assert len(text.encode("utf-8")) <= render.ALERT_JSON_MIN_BYTES
    assert json.loads(text)["notification_id"] == NID


def test_subscriber_json_is_the_document_plus_the_rendered_texts() -> None:
    a = alert()
    doc = json.loads(render.subscriber_json(a))
    assert doc.pop("texts") == {
        "subject": render.subject(a),
        "sms": render.sms_text(a),
        "email": render.email_text(a),
    }
    assert doc == a.to_dict()


def test_subscriber_json_drops_the_email_text_before_the_document_when_tight() -> None:
    a = alert(description="d" * 2000, distinct={"k": tuple("v" * 900 + str(i) for i in range(50))})
    text = render.subscriber_json(a, 6000)
    assert len(text.encode("utf-8")) <= 6000
    doc = json.loads(text)
    assert set(doc["texts"]) == {"subject", "sms"}
    assert doc["notification_id"] == NID


# -- attributes -------------------------------------------------------------------------------


def test_message_attributes_are_exact_non_empty_strings() -> None:
    assert render.message_attributes(alert(account=None)) == {
        "severity": "high",
        "rule": "console-signin-failures",
        "kind": "threshold",
        "notification_id": NID,
        "region": "us-east-1",
    }
    assert render.message_attributes(ALARM)["state"] == "ALARM"
    odd = render.message_attributes(alert(rule_id="a&b\nc\x00"))
    assert odd["rule"] == "a&b c"


@settings(max_examples=200)
@given(
    title=st.text(max_size=300),
    values=st.lists(st.text(max_size=300), max_size=3),
    window=st.text(max_size=40),
    kind=st.sampled_from(list(AlertKind)),
    account=st.one_of(st.none(), st.text(max_size=40)),
)
def test_subject_and_sms_bounds_hold_for_any_text(
    title: str, values: list[str], window: str, kind: AlertKind, account: str | None
) -> None:
    a = alert(
        title=title,
        kind=kind,
        account=account,
        group=tuple((f"k{i}", v) for i, v in enumerate(values)),
        details={"window": window, "old_state": window, "new_state": title},
    )
    s = render.subject(a)
    assert len(s) < 100
    assert one_line_printable(s)
    assert not set(s.replace(" -> ", "")) & set("<>\"'")  # only the alarm arrow is raw
    sms = render.sms_text(a)
    assert len(sms.encode("utf-8")) <= 140
    assert sms.isascii()
    assert one_line_printable(sms)
    assert sms.endswith(f"ref {NID[:8]}")
