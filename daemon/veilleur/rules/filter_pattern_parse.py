"""Parser of the CloudWatch Logs JSON filter-pattern dialect into a small immutable tree.

Grammar (precedence ``()`` > ``&&`` > ``||``, as the CloudWatch Logs user guide documents)::

    pattern    := '{' or_expr '}'
    or_expr    := and_expr ( '||' and_expr )*
    and_expr   := term ( '&&' term )*
    term       := '(' or_expr ')' | condition
    condition  := SELECTOR ( OPERATOR value | 'IS' ('NULL'|'TRUE'|'FALSE') | 'NOT' 'EXISTS' )
    value      := QUOTED_STRING | WORD
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from veilleur.rules.filter_pattern_lex import Kind, Step, Token, fail, locate, quote, tokenize

MAX_DEPTH = 64
"""Deepest nesting of parentheses accepted (keeps evaluation recursion bounded)."""

NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
"""A number as the user guide defines it: integer, decimal, scientific notation, signed."""


class Op(enum.Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class CheckKind(enum.Enum):
    IS_NULL = "IS NULL"
    NOT_EXISTS = "NOT EXISTS"
    IS_TRUE = "IS TRUE"
    IS_FALSE = "IS FALSE"


class Wildcard(enum.Enum):
    EXACT = "exact"  # value
    PREFIX = "prefix"  # value*
    SUFFIX = "suffix"  # *value
    CONTAINS = "contains"  # *value*
    ANY = "any"  # *


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class TextValue:
    body: str
    wildcard: Wildcard


@dataclass(frozen=True, slots=True)
class NumberValue:
    number: int | float
    text: str


@dataclass(frozen=True, slots=True)
class Comparison:
    selector: Selector
    op: Op
    value: TextValue | NumberValue


@dataclass(frozen=True, slots=True)
class Check:
    selector: Selector
    kind: CheckKind


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Node, ...]


Node = Comparison | Check | AllOf | AnyOf

_IS_KINDS = {"NULL": CheckKind.IS_NULL, "TRUE": CheckKind.IS_TRUE, "FALSE": CheckKind.IS_FALSE}
_CONDITION_HINT = "a condition such as '$.eventName = ConsoleLogin'"


def parse(text: str) -> Node:
    """The tree of ``text``; raises MatcherError naming the offending token and its column."""
    return _Parser(text, tokenize(text)).pattern()


def parse_number(text: str) -> int | float:
    """The value of a string that NUMBER fully matches."""
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def _wildcard(token: Token) -> Wildcard:
    if token.star_start and not token.value:
        return Wildcard.ANY
    if token.star_start and token.star_end:
        return Wildcard.CONTAINS
    if token.star_start:
        return Wildcard.SUFFIX
    if token.star_end:
        return Wildcard.PREFIX
    return Wildcard.EXACT


def _describe(token: Token) -> str:
    return "the end of the pattern" if token.kind is Kind.END else quote(token.text)


class _Parser:
    """Recursive descent over one token list; lives for one parse() call only."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self._text = text
        self._tokens = tokens
        self._pos = 0

    def _peek(self) -> Token:
        return self._tokens[self._pos]

    def _next(self) -> Token:
        token = self._tokens[self._pos]
        if token.kind is not Kind.END:
            self._pos += 1
        return token

    def _error(self, token: Token, message: str) -> Exception:
        return fail(self._text, token.offset, message)

    def pattern(self) -> Node:
        first = self._peek()
        if first.kind is Kind.END:
            raise self._error(first, "empty filter pattern: expected '{' and a condition")
        if first.kind is not Kind.LBRACE:
            raise self._error(
                first,
                f"a JSON filter pattern starts with '{{', found {_describe(first)} "
                "(text and space-delimited patterns do not apply to CloudTrail records)",
            )
        self._next()
        if self._peek().kind is Kind.RBRACE:
            raise self._error(
                self._peek(), f"empty JSON filter pattern: expected {_CONDITION_HINT}"
            )
        node = self._or_expr(0)
        closing = self._peek()
        if closing.kind is Kind.RPAREN:
            raise self._error(closing, "unbalanced ')': no '(' to close")
        if closing.kind is Kind.END:
            raise self._error(closing, "missing closing '}' at the end of the pattern")
        if closing.kind is not Kind.RBRACE:
            raise self._error(closing, self._expected_connective(closing, "'}'"))
        self._next()
        extra = self._peek()
        if extra.kind is not Kind.END:
            raise self._error(extra, f"unexpected {_describe(extra)} after the closing '}}'")
        return node

    def _expected_connective(self, token: Token, closer: str) -> str:
        message = f"expected '&&', '||' or {closer} after a condition, found {_describe(token)}"
        if token.kind is Kind.WORD and token.text.upper() in ("AND", "OR"):
            return message + " (write '&&' for AND, '||' for OR)"
        if token.kind is Kind.WORD:
            return message + " (a value that contains spaces must be quoted)"
        return message

    def _or_expr(self, depth: int) -> Node:
        parts = [self._and_expr(depth)]
        while self._peek().kind is Kind.OR:
            self._next()
            parts.append(self._and_expr(depth))
        if len(parts) == 1:
            return parts[0]
        flat: list[Node] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, AnyOf) else (part,))
        return AnyOf(tuple(flat))

    def _and_expr(self, depth: int) -> Node:
        parts = [self._term(depth)]
        while self._peek().kind is Kind.AND:
            self._next()
            parts.append(self._term(depth))
        if len(parts) == 1:
            return parts[0]
        flat: list[Node] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, AllOf) else (part,))
        return AllOf(tuple(flat))

    def _term(self, depth: int) -> Node:
        token = self._peek()
        if token.kind is Kind.LPAREN:
            if depth >= MAX_DEPTH:
                raise self._error(token, f"parentheses nested deeper than {MAX_DEPTH} levels")
            self._next()
            if self._peek().kind is Kind.RPAREN:
                raise self._error(self._peek(), f"empty parentheses: expected {_CONDITION_HINT}")
            node = self._or_expr(depth + 1)
            closing = self._peek()
            if closing.kind in (Kind.RBRACE, Kind.END):
                opened = locate(self._text, token.offset)
                raise self._error(
                    closing, f"missing ')' for the '(' {opened}, found {_describe(closing)}"
                )
            if closing.kind is not Kind.RPAREN:
                raise self._error(closing, self._expected_connective(closing, "')'"))
            self._next()
            return node
        if token.kind is Kind.SELECTOR:
            return self._condition()
        raise self._error(token, f"expected {_CONDITION_HINT} or '(', found {_describe(token)}")

    def _condition(self) -> Node:
        token = self._next()
        selector = Selector(token.text, token.steps)
        after = self._peek()
        keyword = after.text.upper() if after.kind is Kind.WORD else ""
        if after.kind is Kind.OPERATOR:
            self._next()
            op = Op(after.text)
            return Comparison(selector, op, self._value(op, after))
        if keyword == "IS":
            self._next()
            what = self._next()
            kind = _IS_KINDS.get(what.text.upper()) if what.kind is Kind.WORD else None
            if kind is None:
                raise self._error(
                    what, f"expected NULL, TRUE or FALSE after IS, found {_describe(what)}"
                )
            return Check(selector, kind)
        if keyword == "NOT":
            self._next()
            what = self._next()
            if what.kind is not Kind.WORD or what.text.upper() != "EXISTS":
                raise self._error(what, f"expected EXISTS after NOT, found {_describe(what)}")
            return Check(selector, CheckKind.NOT_EXISTS)
        raise self._error(
            after,
            f"expected an operator (= != < <= > >= IS NULL IS TRUE IS FALSE NOT EXISTS) "
            f"after {quote(selector.text)}, found {_describe(after)}",
        )

    def _value(self, op: Op, op_token: Token) -> TextValue | NumberValue:
        token = self._peek()
        if token.kind is Kind.SELECTOR:
            raise self._error(
                token,
                f"comparing a field with another field ({quote(token.text)}) is not supported",
            )
        if token.kind not in (Kind.STRING, Kind.WORD):
            raise self._error(
                token, f"missing value after {quote(op_token.text)}, found {_describe(token)}"
            )
        self._next()
        if token.kind is Kind.WORD and NUMBER.fullmatch(token.text):
            try:
                return NumberValue(parse_number(token.text), token.text)
            except ValueError:  # more digits than int() accepts
                raise self._error(token, f"number {quote(token.text)} is too long") from None
        if op in (Op.EQ, Op.NE):
            return TextValue(token.value, _wildcard(token))
        raise self._error(
            token,
            f"{quote(op.value)} compares numbers: expected a number, found {_describe(token)}",
        )
