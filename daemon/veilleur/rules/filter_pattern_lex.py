"""Tokens of the CloudWatch Logs JSON filter-pattern dialect (see docs/filter-pattern.md).

The lexer turns a pattern such as ``{ ($.eventName = ConsoleLogin) && ($.x != "a b") }`` into a
list of tokens, each with its offset so that errors can point at the offending column.
"""

from __future__ import annotations

import enum
import string
from dataclasses import dataclass

from veilleur.rules.matcher import MatcherError

Step = str | int
"""One step of a selector: a property name, or an array index."""

_DIGITS = frozenset(string.digits)
_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_OPERATOR_CHARS = frozenset("=!<>")
_OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_WORD_STOP = frozenset('(){}"&|=!<>')
_MAX_INDEX_DIGITS = 9


class Kind(enum.Enum):
    LBRACE = "'{'"
    RBRACE = "'}'"
    LPAREN = "'('"
    RPAREN = "')'"
    AND = "'&&'"
    OR = "'||'"
    OPERATOR = "operator"
    SELECTOR = "selector"
    STRING = "quoted string"
    WORD = "word"
    END = "end of pattern"


@dataclass(frozen=True, slots=True)
class Token:
    """``text`` is the source text; for STRING and WORD tokens ``value`` is the decoded text
    without the wildcard stars at its ends, and ``star_start``/``star_end`` say whether an
    unescaped ``*`` stood there."""

    kind: Kind
    text: str
    offset: int
    value: str = ""
    star_start: bool = False
    star_end: bool = False
    steps: tuple[Step, ...] = ()


def locate(text: str, offset: int) -> str:
    """``at column 17`` (1-based), or ``at line 2, column 5`` for a pattern on several lines."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    if "\n" in text:
        return f"at line {line}, column {column}"
    return f"at column {column}"


def quote(text: str, limit: int = 40) -> str:
    """A token as it appears in an error message: quoted, shortened."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def fail(text: str, offset: int, message: str) -> MatcherError:
    return MatcherError(message, locate(text, offset))


def _split_stars(chars: list[tuple[str, bool]]) -> tuple[str, bool, bool]:
    """(value, star_start, star_end) from (character, escaped) pairs: unescaped ``*`` at either
    end are wildcards; a ``*`` anywhere else is an ordinary character."""
    start, end = 0, len(chars)
    while start < end and chars[start] == ("*", False):
        start += 1
    while end > start and chars[end - 1] == ("*", False):
        end -= 1
    value = "".join(ch for ch, _ in chars[start:end])
    return value, start > 0, end < len(chars)


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an END token. Raises MatcherError."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            tokens.append(Token(Kind.END, "", n))
            return tokens
        ch = text[i]
        if ch in "{}()":
            kind = {"{": Kind.LBRACE, "}": Kind.RBRACE, "(": Kind.LPAREN, ")": Kind.RPAREN}[ch]
            tokens.append(Token(kind, ch, i))
            i += 1
        elif ch in "&|":
            if text.startswith(ch * 2, i):
                tokens.append(Token(Kind.AND if ch == "&" else Kind.OR, ch * 2, i))
                i += 2
            else:
                raise fail(text, i, f"unknown operator {quote(ch)}: use '&&' for AND, '||' for OR")
        elif ch in _OPERATOR_CHARS:
            j = i
            while j < n and text[j] in _OPERATOR_CHARS:
                j += 1
            op = text[i:j]
            if op not in _OPERATORS:
                raise fail(text, i, f"unknown operator {quote(op)}: expected one of = != < <= > >=")
            tokens.append(Token(Kind.OPERATOR, op, i))
            i = j
        elif ch == "$":
            token = _selector(text, i)
            tokens.append(token)
            i += len(token.text)
        elif ch == '"':
            token = _quoted(text, i)
            tokens.append(token)
            i += len(token.text)
        elif ch == "%":
            raise fail(text, i, "regular expressions (%...%) are not supported in filter patterns")
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _WORD_STOP:
                j += 1
            word = text[i:j]
            value, star_start, star_end = _split_stars([(c, False) for c in word])
            tokens.append(Token(Kind.WORD, word, i, value, star_start, star_end))
            i = j


def _selector(text: str, start: int) -> Token:
    """``$.a.b[0].c``: property names of letters, digits, '-' and '_'; indexes of digits."""
    n = len(text)
    j = start + 1
    if j >= n or text[j] != ".":
        raise fail(text, j, "a selector starts with '$.' followed by a property name")
    steps: list[Step] = []
    while j < n and text[j] in ".[":
        if text[j] == ".":
            k = j + 1
            while k < n and text[k] in _KEY_CHARS:
                k += 1
            if k == j + 1:
                found = quote(text[k]) if k < n else "the end of the pattern"
                raise fail(text, k, f"expected a property name after '.', found {found}")
            steps.append(text[j + 1 : k])
        else:
            k = j + 1
            while k < n and text[k] in _DIGITS:
                k += 1
            if k == j + 1 or k >= n or text[k] != "]":
                if text.startswith("*]", j + 1):
                    raise fail(
                        text,
                        j,
                        "array wildcard '[*]' is not supported by CloudWatch Logs filter "
                        "patterns: use an index such as [0]",
                    )
                raise fail(text, j, "expected an array index such as [0] after '['")
            digits = text[j + 1 : k]
            if len(digits) > _MAX_INDEX_DIGITS:
                raise fail(text, j + 1, f"array index {quote(digits)} is too large")
            steps.append(int(digits))
            k += 1
        j = k
    return Token(Kind.SELECTOR, text[start:j], start, steps=tuple(steps))


def _quoted(text: str, start: int) -> Token:
    r"""A double-quoted value. ``\"``, ``\\`` and ``\*`` are escapes; any other backslash is
    kept as it is."""
    n = len(text)
    chars: list[tuple[str, bool]] = []
    j = start + 1
    while j < n:
        ch = text[j]
        if ch == '"':
            value, star_start, star_end = _split_stars(chars)
            return Token(Kind.STRING, text[start : j + 1], start, value, star_start, star_end)
        if ch == "\\" and j + 1 < n and text[j + 1] in '"\\*':
            chars.append((text[j + 1], True))
            j += 2
            continue
        chars.append((ch, False))
        j += 1
    raise fail(text, start, "unterminated quoted string: missing closing '\"'")
