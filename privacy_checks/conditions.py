"""The condition language of target profiles (`poll.until`, `gone_when`, `deletion_notice`).

A deliberately small language, parsed here and never handed to Python's eval: a profile
comes from outside the framework, and a condition must not be able to do anything but read
the response it is given. Errors name the column, so `privacy-checks lint` can point at them.

    status == 404 or json.deleted == true
    json.status in ['completed', 'done'] and not exists(json.error)
    len(json.messages) > 0 and lower(headers.content-type) contains 'json'

Names are dotted paths into the context (numeric segments index lists, negative ones count
from the end); a path that is not there is null. Comparisons never raise: values of
different types are simply unequal, and ordering them is false.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["Condition", "ConditionError", "compile_condition", "lookup"]

Evaluator = Callable[[Mapping[str, Any]], Any]

_MISSING = object()

_KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "true", "false", "null"})
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains")
_FUNCTIONS = ("exists", "len", "lower")

# Python spellings people type by habit; without a hint they would silently be paths.
_PYTHONISMS = {"True": "true", "False": "false", "None": "null", "AND": "and", "OR": "or",
               "NOT": "not", "And": "and", "Or": "or", "Not": "not"}

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Segments after the first may hold '-' (header names) and digits (list indexes).
_NAME = re.compile(r"[A-Za-z_]\w*(?:\.(?:-?\d+|[\w-]+))*")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


class ConditionError(ValueError):
    """A condition that does not parse; str() is ``at column N: <what was expected>``."""

    def __init__(self, column: int, problem: str) -> None:
        super().__init__(f"at column {column}: {problem}")
        self.column = column
        self.problem = problem


class _Token(NamedTuple):
    kind: str  # string, number, name, keyword, op, punct, end
    value: Any
    column: int
    text: str

    def describe(self) -> str:
        return "the end of the condition" if self.kind == "end" else f"'{self.text}'"

    def found(self) -> str:
        """A ', found x' suffix; at the end of input the column already says where."""
        return "" if self.kind == "end" else f", found '{self.text}'"


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        col = i + 1
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"":
            value, i = _read_string(source, i)
            tokens.append(_Token("string", value, col, source[col - 1:i]))
            continue
        m = _NUMBER.match(source, i)
        if m and (ch != "-" or not tokens or tokens[-1].kind in ("op", "punct", "keyword")):
            text = m.group()
            tokens.append(_Token("number", float(text) if "." in text else int(text), col, text))
            i = m.end()
            continue
        m = _NAME.match(source, i)
        if m:
            text = m.group()
            i = m.end()
            if i < n and source[i] == ".":
                raise ConditionError(i + 1, f"expected a name after '{text}.'")
            if text in _PYTHONISMS:
                raise ConditionError(col, f"unknown name '{text}'; write '{_PYTHONISMS[text]}'")
            tokens.append(_Token("keyword" if text in _KEYWORDS else "name", text, col, text))
            continue
        two = source[i:i + 2]
        if two in ("==", "!=", "<=", ">="):
            tokens.append(_Token("op", two, col, two))
            i += 2
            continue
        if ch in "<>":
            tokens.append(_Token("op", ch, col, ch))
            i += 1
            continue
        if ch in "()[],":
            tokens.append(_Token("punct", ch, col, ch))
            i += 1
            continue
        hint = {"=": "; use '==' to compare", "&": "; use 'and'", "|": "; use 'or'",
                "!": "; use 'not' or '!='"}.get(ch, "")
        raise ConditionError(col, f"unexpected character '{ch}'{hint}")
    tokens.append(_Token("end", None, n + 1, ""))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    out: list[str] = []
    i = start + 1
    while i < len(source):
        ch = source[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(source):
            nxt = source[i + 1]
            # Unknown escapes stay as written so regex-like text survives intact.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ConditionError(start + 1, f"unterminated string (no closing {quote})")


def lookup(context: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted `path` in `context`, or `default` when any part is missing.

    Numeric segments index lists (negative from the end). Keys under `headers` match
    whatever their case, as HTTP header names do.
    """
    value = _resolve(context, path.split("."))
    return default if value is _MISSING else value


def _resolve(context: Any, parts: Sequence[str]) -> Any:
    cur = context
    for depth, part in enumerate(parts):
        if isinstance(cur, Mapping):
            if part in cur:
                cur = cur[part]
            elif depth == 1 and parts[0] == "headers":
                lowered = part.lower()
                cur = next((v for k, v in cur.items() if isinstance(k, str) and k.lower() == lowered),
                           _MISSING)
            else:
                return _MISSING
        elif isinstance(cur, Sequence) and not isinstance(cur, str | bytes) and _is_index(part):
            index = int(part)
            if not -len(cur) <= index < len(cur):
                return _MISSING
            cur = cur[index]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _is_index(part: str) -> bool:
    return part.lstrip("-").isdigit()


def _truthy(value: Any) -> bool:
    return value is not _MISSING and bool(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    # JSON's true is not 1, although Python's True is.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except Exception:  # a foreign object in the context must not make a condition raise
        return False


def _ordered(op: str, a: Any, b: Any) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _member(item: Any, container: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    if isinstance(container, Sequence) and not isinstance(container, bytes):
        return any(_equal(item, x) for x in container)
    return False


def _compare(op: str, a: Any, b: Any) -> bool:
    a = None if a is _MISSING else a
    b = None if b is _MISSING else b
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op == "in":
        return _member(a, b)
    if op == "not in":
        return not _member(a, b)
    if op == "contains":
        return _member(b, a)
    return _ordered(op, a, b)


def _length(value: Any) -> Any:
    return len(value) if isinstance(value, str | Sequence | Mapping) and not isinstance(value, bytes) else None


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else None


class _Parser:
    """Recursive descent; each rule returns a function of the context.

    condition  := or
    or         := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | comparison
    comparison := operand (('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in' | 'contains') operand)?
    operand    := literal | list | name | function '(' args ')' | '(' or ')'
    """

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.pos = 0
        self.names: list[tuple[str, int]] = []  # (dotted name, column) of every name read

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def _take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _is(self, kind: str, value: Any = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (value is None or tok.value == value)

    def parse(self) -> Evaluator:
        if self._is("end"):
            raise ConditionError(1, "expected a condition, found nothing")
        fn = self._or()
        if not self._is("end"):
            raise self._unexpected_after_condition()
        return fn

    def _unexpected_after_condition(self) -> ConditionError:
        tok = self.tok
        if tok.kind == "punct" and tok.value == ")":
            return ConditionError(tok.column, "unexpected ')' without a matching '('")
        return ConditionError(tok.column, f"expected 'and', 'or' or an operator, found {tok.describe()}")

    def _or(self) -> Evaluator:
        left = self._and()
        while self._is("keyword", "or"):
            self._take()
            self._need_condition_after("or")
            right = self._and()
            left = (lambda lf, rf: lambda ctx: _truthy(lf(ctx)) or _truthy(rf(ctx)))(left, right)
        return left

    def _and(self) -> Evaluator:
        left = self._not()
        while self._is("keyword", "and"):
            self._take()
            self._need_condition_after("and")
            right = self._not()
            left = (lambda lf, rf: lambda ctx: _truthy(lf(ctx)) and _truthy(rf(ctx)))(left, right)
        return left

    def _need_condition_after(self, word: str) -> None:
        if not self._starts_operand() and not self._is("keyword", "not"):
            raise ConditionError(self.tok.column, f"expected a condition after '{word}'"
                                                  f"{self.tok.found()}")

    def _not(self) -> Evaluator:
        if self._is("keyword", "not"):
            self._take()
            self._need_condition_after("not")
            inner = self._not()
            return lambda ctx: not _truthy(inner(ctx))
        return self._comparison()

    def _comparison_operator(self) -> str | None:
        tok = self.tok
        if tok.kind == "op":
            return tok.value
        if tok.kind == "keyword" and tok.value in ("in", "contains"):
            return tok.value
        if tok.kind == "keyword" and tok.value == "not" and self.tokens[self.pos + 1].value == "in" \
                and self.tokens[self.pos + 1].kind == "keyword":
            return "not in"
        return None

    def _comparison(self) -> Evaluator:
        left = self._operand(None)
        op = self._comparison_operator()
        if op is None:
            return left
        self._take()
        if op == "not in":
            self._take()
        right = self._operand(op)
        if self._comparison_operator() is not None:
            raise ConditionError(self.tok.column, "comparisons cannot be chained; join them with 'and'")
        return lambda ctx: _compare(op, left(ctx), right(ctx))

    def _starts_operand(self) -> bool:
        tok = self.tok
        return (tok.kind in ("string", "number", "name")
                or (tok.kind == "keyword" and tok.value in ("true", "false", "null"))
                or (tok.kind == "punct" and tok.value in "(["))

    def _operand(self, after: str | None) -> Evaluator:
        tok = self.tok
        if not self._starts_operand():
            if after is not None:
                raise ConditionError(tok.column, f"expected a value after '{after}'{tok.found()}")
            raise ConditionError(tok.column, f"expected a value{tok.found()}")
        self._take()
        if tok.kind in ("string", "number"):
            return _constant(tok.value)
        if tok.kind == "keyword":
            return _constant({"true": True, "false": False, "null": None}[tok.value])
        if tok.kind == "name":
            if self._is("punct", "("):
                return self._call(tok)
            parts = tok.value.split(".")
            self.names.append((tok.value, tok.column))
            return lambda ctx: _resolve(ctx, parts)
        if tok.value == "(":
            inner = self._or()
            if not self._is("punct", ")"):
                raise ConditionError(self.tok.column, f"expected ')' to close the '(' at column {tok.column}"
                                                      f"{self.tok.found()}")
            self._take()
            return inner
        return self._list(tok)

    def _list(self, opening: _Token) -> Evaluator:
        items: list[Evaluator] = []
        if self._is("punct", "]"):
            self._take()
            return _constant([])
        while True:
            items.append(self._operand("[" if not items else ","))
            if self._is("punct", ","):
                self._take()
                continue
            if self._is("punct", "]"):
                self._take()
                return lambda ctx: [None if (v := item(ctx)) is _MISSING else v for item in items]
            raise ConditionError(self.tok.column, f"expected ',' or ']' to close the '[' at column "
                                                  f"{opening.column}{self.tok.found()}")

    def _call(self, name: _Token) -> Evaluator:
        if name.value not in _FUNCTIONS:
            raise ConditionError(name.column, f"unknown function '{name.value}' "
                                              f"(known: {', '.join(_FUNCTIONS)})")
        self._take()  # (
        if name.value == "exists":
            arg = self.tok
            if arg.kind != "name" or self.tokens[self.pos + 1].value == "(":
                raise ConditionError(arg.column, "exists() takes a name, such as exists(json.id)")
            self._take()
            parts = arg.value.split(".")
            self.names.append((arg.value, arg.column))
            self._close_call(name)
            return lambda ctx: _resolve(ctx, parts) is not _MISSING
        if self._is("punct", ")"):
            raise ConditionError(self.tok.column, f"{name.value}() takes one value")
        inner = self._operand(f"{name.value}(")
        self._close_call(name)
        fn = _length if name.value == "len" else _lower
        return lambda ctx: fn(inner(ctx))

    def _close_call(self, name: _Token) -> None:
        if self._is("punct", ","):
            raise ConditionError(self.tok.column, f"{name.value}() takes one value")
        if not self._is("punct", ")"):
            raise ConditionError(self.tok.column, f"expected ')' to close {name.value}( at column {name.column}"
                                                  f"{self.tok.found()}")
        self._take()


def _constant(value: Any) -> Evaluator:
    return lambda ctx: value


class Condition:
    """A compiled condition; `evaluate` reads the context and never raises on its values."""

    __slots__ = ("source", "_fn", "names")

    def __init__(self, source: str, fn: Evaluator, names: list[tuple[str, int]] | None = None) -> None:
        self.source = source
        self._fn = fn
        # the dotted names it reads, with their columns: lint checks them against what the
        # step kind (or a recipient's delivery) can produce
        self.names = list(names or [])

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return _truthy(self._fn(context))

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def compile_condition(text: str) -> Condition:
    """Parse `text`; raises ConditionError naming the column and what was expected there."""
    if not isinstance(text, str):
        raise ConditionError(1, f"a condition is text, not {type(text).__name__}")
    parser = _Parser(text)
    fn = parser.parse()
    return Condition(text, fn, parser.names)
