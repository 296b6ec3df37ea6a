"""Reading CloudTrail records from files: S3 log files, JSON lines, lookup-events output.

Every malformed file or record is reported (file, index, reason) and skipped; the rest is read.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veilleur.model import InvalidRecord, TrailEvent

MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    index: int | None  # record index inside the file, None for the whole file
    reason: str
    line: int | None = None  # JSON lines: the line number (from 1), as editors show it

    def __str__(self) -> str:
        if self.line is not None:
            where = f"{self.file}:{self.line}"
        else:
            where = self.file if self.index is None else f"{self.file}[{self.index}]"
        return f"{where}: {self.reason}"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def _records_of(doc: Any) -> list[Any] | None:
    """The record list of a parsed document, or None if the shape is unknown."""
    if isinstance(doc, dict):
        if isinstance(doc.get("Records"), list):
            return list(doc["Records"])
        if isinstance(doc.get("Events"), list):  # aws cloudtrail lookup-events
            return list(doc["Events"])
        if "eventID" in doc:
            return [doc]
    if isinstance(doc, list):
        return doc
    return None


def _to_event(item: Any) -> TrailEvent:
    if isinstance(item, dict) and isinstance(item.get("CloudTrailEvent"), str):
        return TrailEvent.from_json(item["CloudTrailEvent"])
    return TrailEvent.from_record(item)


def read_file(path: Path, problems: list[Problem]) -> Iterator[TrailEvent]:
    """Yield the events of one file; append to ``problems`` what cannot be read."""
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            problems.append(Problem(name, None, "file larger than 512 MiB, skipped"))
            return
        text = _read_text(path)
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        problems.append(Problem(name, None, f"cannot read: {exc}"))
        return
    items: list[Any] | None = None
    try:
        items = _records_of(json.loads(text))
    except ValueError as exc:
        lines = text.splitlines()
        if _looks_like_json_lines(lines):
            yield from _read_lines(name, lines, problems)
        else:  # one broken document (a truncated download): one problem, not one per line
            problems.append(Problem(name, None, f"not valid JSON: {str(exc)[:120]}"))
        return
    except RecursionError:
        problems.append(Problem(name, None, "JSON nested too deeply"))
        return
    if items is None:
        problems.append(
            Problem(
                name,
                None,
                'not CloudTrail records: expected {"Records": [...]}, '
                '{"Events": [...]} or JSON lines',
            )
        )
        return
    for i, item in enumerate(items):
        try:
            yield _to_event(item)
        except InvalidRecord as exc:
            problems.append(Problem(name, i, str(exc)))


def _looks_like_json_lines(lines: list[str]) -> bool:
    """JSON lines when the first non-blank line is a JSON object on its own."""
    first = next((line for line in lines if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, RecursionError):
        return False


def _read_lines(name: str, lines: list[str], problems: list[Problem]) -> Iterator[TrailEvent]:
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError) as exc:
            problems.append(Problem(name, i, f"not valid JSON: {str(exc)[:80]}", line=i + 1))
            continue
        try:
            yield _to_event(item)
        except InvalidRecord as exc:
            problems.append(Problem(name, i, str(exc), line=i + 1))


def expand(paths: list[str]) -> list[Path]:
    """Files as given; directories expand to their *.json, *.json.gz and *.jsonl files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and f.name.endswith((".json", ".json.gz", ".jsonl", ".gz"))
                )
            )
        else:
            out.append(p)
    return out
