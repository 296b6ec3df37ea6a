"""What the demo prints: each message as its subscriber sees it, then the verdict."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

from veilleur.notify.render import sanitize

WIDTH = 92


def _box(title: str, body: str, out: TextIO) -> None:
    out.write(f"\n┌─ {title} " + "─" * max(0, WIDTH - len(title) - 4) + "\n")
    for line in body.splitlines() or [""]:
        for part in textwrap.wrap(line, WIDTH - 4) or [""]:
            out.write(f"│ {part}\n")
    out.write("└" + "─" * (WIDTH - 1) + "\n")
    out.flush()


def email(doc: dict[str, Any], out: TextIO = sys.stdout) -> None:
    texts = doc.get("texts", {})
    body = f"Subject: {texts.get('subject', doc.get('title'))}\n\n{texts.get('email', '')}"
    _box("📧 email subscriber (SQS queue standing in)", body, out)


def sms(doc: dict[str, Any], out: TextIO = sys.stdout) -> None:
    text = doc.get("texts", {}).get("sms", "")
    _box(f"📱 SMS subscriber ({len(text.encode())} bytes)", text, out)


def event(evt: dict[str, Any], out: TextIO = sys.stdout) -> None:
    d = evt.get("detail", {})
    details = d.get("details", {})
    lines = [
        f"source: {evt.get('source')}   detail-type: {evt.get('detail-type')}",
        f"rule: {d.get('rule_id')}   severity: {d.get('severity')}   count: {d.get('count')}",
        f"notification_id: {d.get('notification_id')}",
    ]
    if "new_state" in details:
        lines.append(f"state: {details.get('old_state')} -> {details.get('new_state')}")
    if d.get("group"):
        lines.append(
            "group: " + ", ".join(f"{k}={sanitize(str(v), 60)}" for k, v in d["group"].items())
        )
    if d.get("resources"):
        lines.append("resources: " + ", ".join(d["resources"]))
    _box("⚙ EventBridge target (lockdown automation queue)", "\n".join(lines), out)


def verdict(
    rows: Sequence[tuple[str, bool, bool, bool]],
    unexpected: Sequence[str] = (),
    out: TextIO = sys.stdout,
) -> bool:
    """Expected alerts by subscriber; alerts nobody expected are listed (false positives)."""
    out.write("\nVerdict: expected alert -> email / SMS / EventBridge\n")
    ok = True
    for key, e, s, b in rows:
        mark = "✔" if e and s and b else "✘"
        ok &= e and s and b
        out.write(
            f"  {mark} {key:<46} {'yes' if e else 'NO ':<5}{'yes' if s else 'NO ':<5}"
            f"{'yes' if b else 'NO'}\n"
        )
    for key in unexpected:
        out.write(f"  ? {key:<46} not in the story (raised by the background noise?)\n")
    out.write(
        "\nAll expected alerts arrived everywhere.\n"
        if ok
        else "\nSome expected alerts did not arrive (see above and the daemon log).\n"
    )
    out.flush()
    return ok
