"""Logging: structlog, one JSON object per line off a TTY, console rendering on one.

Logging is process-wide state by nature; all of it lives here, set by ``configure_logging``
(call it again to change level or format: it replaces, never stacks) and undone by
``reset_logging`` (tests). Our events and the stdlib loggers of boto3, botocore and apscheduler
go through one handler and one processor chain, so the output is uniform and every line passes
the redaction processor: credentials, tokens and request signatures never reach the stream.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

Level = Literal["debug", "info", "warning", "error"]
Format = Literal["auto", "json", "console"]

REDACTED = "[REDACTED]"
LOGGER_NAME = "veilleur"
# Quiet at WARNING whatever our level: botocore's DEBUG output carries request headers
# (Authorization, X-Amz-Security-Token) and response bodies (AssumeRole credentials).
THIRD_PARTY = ("boto3", "botocore", "s3transfer", "urllib3", "apscheduler")

# Key fragments, compared on the key lowercased with everything but letters and digits removed:
# aws_secret_access_key, SecretAccessKey, X-Amz-Security-Token, SessionToken, Authorization...
_SENSITIVE_FRAGMENTS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "authorization",
    "signature",
    "privatekey",
    "apikey",
    "cookie",
)
_SENSITIVE_KEYS = frozenset({"credentials", "auth"})

# A secret access key: 40 base64 characters standing alone, upper and lower case letters mixed
# (so a 40-digit hex digest, which is all one case, is left alone).
_SECRET_KEY = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
# An STS session token: a long base64 run (hundreds of characters in practice).
_SESSION_TOKEN = re.compile(r"[A-Za-z0-9/+]{100,}={0,2}")
# Signatures and tokens inside header values, query strings or messages.
_INLINE = re.compile(
    r"(?i)\b(signature|x-amz-signature|x-amz-security-token|aws_secret_access_key|"
    r"aws_session_token|secretaccesskey|sessiontoken|password)(\"?\s*[=:]\s*\"?)([^\s,&\"']+)"
)
_MAX_DEPTH = 16


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    k = "".join(c for c in key.lower() if c.isalnum())
    return k in _SENSITIVE_KEYS or any(f in k for f in _SENSITIVE_FRAGMENTS)


def redact_text(text: str) -> str:
    """Mask values that look like secret keys, session tokens or inline signatures."""
    text = _INLINE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _SESSION_TOKEN.sub(REDACTED, text)
    return _SECRET_KEY.sub(REDACTED, text)


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with sensitive keys masked at any depth and secret-looking strings."""
    if depth > _MAX_DEPTH:
        return REDACTED  # deeper than any sane log field, or a cycle
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_sensitive_key(k) else redact(v, depth + 1)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, depth + 1) for v in value]
    return value


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``redact`` applied to every field but structlog's own."""
    for key, value in list(event_dict.items()):
        if key.startswith("_") or key == "exc_info":
            continue  # _record, _from_structlog: internals; exc_info is rendered later
        event_dict[key] = REDACTED if is_sensitive_key(key) else redact(value)
    return event_dict


def _render_exception(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """The traceback as one string field, then redacted (exception messages quote values)."""
    event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = redact_text(event_dict["exception"])
    return event_dict


def _lead_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """timestamp, level, logger, event first: easier to read, same JSON."""
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = event_dict["event"].rstrip()  # py.warnings ends with a newline
    lead = {
        k: event_dict.pop(k) for k in ("timestamp", "level", "logger", "event") if k in event_dict
    }
    return {**lead, **event_dict}


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _render_exception,
        redact_processor,
    ]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def use_json(fmt: Format, stream: TextIO) -> bool:
    return fmt == "json" or (fmt == "auto" and not _is_tty(stream))


@dataclass
class _State:
    """What ``configure_logging`` changed, so ``reset_logging`` can undo it."""

    handler: logging.Handler | None = None
    root_level: int = logging.WARNING
    levels: dict[str, int] = field(default_factory=dict)
    captured_warnings: bool = False


_state = _State()


def configure_logging(
    level: Level | str = "info", fmt: Format = "auto", stream: TextIO | None = None
) -> None:
    """Send structlog events (at ``level``) and stdlib records (at WARNING) to ``stream``."""
    reset_logging()
    stream = stream if stream is not None else sys.stdout
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer: Processor
    if use_json(fmt, stream):
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _lead_fields,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    _state.root_level = root.level
    _state.levels = {
        name: logging.getLogger(name).level for name in (LOGGER_NAME, "py.warnings", *THIRD_PARTY)
    }
    _state.handler = handler
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    # structlog filters by level; the stdlib logger it writes through lets everything pass.
    logging.getLogger(LOGGER_NAME).setLevel(logging.DEBUG)
    _state.captured_warnings = True
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=lambda *_args: logging.getLogger(LOGGER_NAME),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo ``configure_logging``: structlog's defaults, the stdlib loggers as they were."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    if _state.handler is not None:
        root.removeHandler(_state.handler)
        _state.handler = None
        root.setLevel(_state.root_level)
        for name, lvl in _state.levels.items():
            logging.getLogger(name).setLevel(lvl)
        _state.levels = {}
    if _state.captured_warnings:
        logging.captureWarnings(False)
        _state.captured_warnings = False


def get_logger(**context: Any) -> FilteringBoundLogger:
    """A structlog logger with ``context`` bound."""
    logger: FilteringBoundLogger = structlog.get_logger(LOGGER_NAME, **context)
    return logger
