"""The one escape function for attacker-controlled text on a terminal or in a message."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str, limit: int = 200) -> str:
    """Control and bidi characters shown as ``\\xNN``; whitespace collapsed; truncated."""
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    out = " ".join(out.split())
    if len(out) > limit:
        out = out[: max(0, limit - 1)] + "…"
    return out
