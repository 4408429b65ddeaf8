"""The condition language: semantics, precedence, missing paths, and every error message."""

from __future__ import annotations

import pytest

from privacy_checks.conditions import Condition, ConditionError, compile_condition, lookup

CTX = {
    "status": 404,
    "method": "POST",
    "path": "/crm/deletions",
    "text": "deleted user 42",
    "headers": {"Content-Type": "application/json", "Location": "/requests/7"},
    "json": {
        "deleted": True,
        "status": "Completed",
        "count": 0,
        "ratio": 0.5,
        "empty": "",
        "nothing": None,
        "items": [{"id": 1, "tags": ["a", "b"]}, {"id": 2}],
        "messages": [],
    },
}


def ev(text: str, ctx=CTX) -> bool:
    return compile_condition(text).evaluate(ctx)


@pytest.mark.parametrize(("text", "expected"), [
    # literals and comparison
    ("status == 404", True),
    ("status != 404", False),
    ("status == 404.0", True),
    ("status < 500", True),
    ("status <= 404", True),
    ("status > 404", False),
    ("status >= 405", False),
    ("json.ratio > 0.25", True),
    ("json.count == -0", True),
    ("json.items.0.id == 1", True),
    ("json.items.-1.id == 2", True),
    ("json.items.1.id != json.items.0.id", True),
    ("method == 'POST'", True),
    ('method == "POST"', True),
    ("'abc' < 'abd'", True),
    ("json.deleted == true", True),
    ("json.deleted != false", True),
    ("json.nothing == null", True),
    ("[1, 2] == [1, 2]", True),
    # membership
    ("status in [200, 404]", True),
    ("status in []", False),
    ("status not in [200, 204]", True),
    ("'user' in text", True),
    ("'USER' in text", False),
    ("text contains 'user 42'", True),
    ("json.items.0.tags contains 'b'", True),
    ("json.items.0.tags contains 'c'", False),
    ("'deleted' in json", True),
    ("json contains 'missing'", False),
    ("lower(json.status) in ['completed', 'done']", True),
    # bare values are truthy or not
    ("json.deleted", True),
    ("json.count", False),
    ("json.empty", False),
    ("json.messages", False),
    ("json.items", True),
    ("true", True),
    ("null", False),
    # functions
    ("exists(json.deleted)", True),
    ("exists(json.nothing)", True),
    ("exists(json.absent)", False),
    ("exists(json.items.5)", False),
    ("len(json.items) == 2", True),
    ("len(text) > 5", True),
    ("len(json) >= 8", True),
    ("len(json.messages) == 0", True),
    ("lower(method) == 'post'", True),
    # headers ignore case
    ("headers.content-type contains 'json'", True),
    ("headers.LOCATION == '/requests/7'", True),
    ("headers.X-Missing == null", True),
])
def test_evaluation(text, expected):
    assert ev(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    # not binds tighter than and, and tighter than or
    ("true or false and false", True),
    ("(true or false) and false", False),
    ("not false and false", False),
    ("not (false and false)", True),
    ("not not true", True),
    ("false or not false", True),
    ("status == 200 or status == 404 and method == 'POST'", True),
    ("status == 200 or status == 404 and method == 'GET'", False),
    ("(status == 200 or status == 404) and method == 'GET'", False),
    ("not status == 200", True),
    ("not json.items.0.id == 1 or json.deleted", True),
])
def test_precedence(text, expected):
    assert ev(text) is expected


def test_and_or_short_circuit_on_missing_values():
    assert ev("exists(json.job) and json.job.state == 'done'", {"json": {}}) is False
    assert ev("json == null or json.state == 'done'", {}) is True


@pytest.mark.parametrize("text", [
    "json.x == null",
    "json.a.b.c == null",
    "nowhere == null",
    "json.items.9.id == null",
    "text.0 == null",          # strings are not indexed
    "status.code == null",     # nor are numbers
    "json.items.x == null",    # lists take numeric segments only
    "not exists(json.x)",
    "len(json.x) == null",
    "lower(json.x) == null",
])
def test_missing_paths_are_null(text):
    assert ev(text) is True


@pytest.mark.parametrize("text", [
    "json.x < 1", "json.x >= 0", "1 > json.x",
    "status < '500'", "'a' < 1", "json.items > 1", "json < json",
    "json.deleted > false", "true > 0",
    "1 in 'abc'", "'a' in 1", "'a' in null", "null contains 'a'",
    "json.deleted == 1", "1 == true", "0 == false", "status == '404'",
    "len(status) > 0", "lower(status) == '404'",
])
def test_type_mismatches_are_false_and_never_raise(text):
    assert ev(text) is False


def test_evaluation_tolerates_odd_contexts():
    cond = compile_condition("json.a.0 == 1 or headers.x == 'y'")
    assert cond.evaluate({}) is False
    assert cond.evaluate({"json": [1, 2], "headers": None}) is False
    assert cond.evaluate({"json": {"a": (1,)}}) is True
    assert cond.evaluate({"json": "text", "headers": {"X": "y"}}) is True


def test_condition_keeps_its_source():
    cond = compile_condition("status == 404")
    assert isinstance(cond, Condition)
    assert cond.source == "status == 404"
    assert repr(cond) == "Condition('status == 404')"


@pytest.mark.parametrize(("text", "value"), [
    (r"'it\'s'", "it's"),
    (r'"say \"hi\""', 'say "hi"'),
    (r"'a\\b'", "a\\b"),
    (r"'line\nbreak'", "line\nbreak"),
    (r"'\d+'", r"\d+"),
    ("'[and] or (not)'", "[and] or (not)"),
])
def test_string_literals(text, value):
    assert compile_condition(f"text == {text}").evaluate({"text": value})


def test_names_that_start_with_keywords_are_names():
    assert ev("notes == 'x' or order == 1 or contains_pii", {"notes": "x"})
    assert ev("json.in == 1 and json.not.or == 2", {"json": {"in": 1, "not": {"or": 2}}})


def test_lookup_follows_the_same_paths():
    assert lookup(CTX, "json.items.0.tags.1") == "b"
    assert lookup(CTX, "headers.location") == "/requests/7"
    assert lookup(CTX, "json.absent") is None
    assert lookup(CTX, "json.absent", default="-") == "-"


ERRORS = [
    ("", "at column 1: expected a condition, found nothing"),
    ("   ", "at column 1: expected a condition, found nothing"),
    ("status ==", "at column 10: expected a value after '=='"),
    ("status == and", "at column 11: expected a value after '==', found 'and'"),
    ("status in", "at column 10: expected a value after 'in'"),
    ("status not in", "at column 14: expected a value after 'not in'"),
    ("json contains )", "at column 15: expected a value after 'contains', found ')'"),
    ("== 404", "at column 1: expected a value, found '=='"),
    ("status = 404", "at column 8: unexpected character '='; use '==' to compare"),
    ("a && b", "at column 3: unexpected character '&'; use 'and'"),
    ("a || b", "at column 3: unexpected character '|'; use 'or'"),
    ("!a", "at column 1: unexpected character '!'; use 'not' or '!='"),
    ("status @ 1", "at column 8: unexpected character '@'"),
    ("status - 1", "at column 8: unexpected character '-'"),
    ("json.x == True", "at column 11: unknown name 'True'; write 'true'"),
    ("json.x == None", "at column 11: unknown name 'None'; write 'null'"),
    ("a AND b", "at column 3: unknown name 'AND'; write 'and'"),
    ("status 404", "at column 8: expected 'and', 'or' or an operator, found '404'"),
    ("status == 404 404", "at column 15: expected 'and', 'or' or an operator, found '404'"),
    ("status == 404)", "at column 14: unexpected ')' without a matching '('"),
    ("(status == 404", "at column 15: expected ')' to close the '(' at column 1"),
    ("(status == 404 or", "at column 18: expected a condition after 'or'"),
    ("status == 404 and", "at column 18: expected a condition after 'and'"),
    ("a and or b", "at column 7: expected a condition after 'and', found 'or'"),
    ("not", "at column 4: expected a condition after 'not'"),
    ("not )", "at column 5: expected a condition after 'not', found ')'"),
    ("()", "at column 2: expected a value, found ')'"),
    ("1 < 2 < 3", "at column 7: comparisons cannot be chained; join them with 'and'"),
    ("a == b != c", "at column 8: comparisons cannot be chained; join them with 'and'"),
    ("'open", "at column 1: unterminated string (no closing ')"),
    ('x == "open', 'at column 6: unterminated string (no closing ")'),
    ("json.", "at column 5: expected a name after 'json.'"),
    ("json.items..id", "at column 11: expected a name after 'json.items.'"),
    ("status in [1, 2", "at column 16: expected ',' or ']' to close the '[' at column 11"),
    ("status in [1 2]", "at column 14: expected ',' or ']' to close the '[' at column 11, found '2'"),
    ("status in [1,]", "at column 14: expected a value after ',', found ']'"),
    ("status in [,]", "at column 12: expected a value after '[', found ','"),
    ("size(json.items) > 1", "at column 1: unknown function 'size' (known: exists, len, lower)"),
    ("exists('x')", "at column 8: exists() takes a name, such as exists(json.id)"),
    ("exists(len(x))", "at column 8: exists() takes a name, such as exists(json.id)"),
    ("exists()", "at column 8: exists() takes a name, such as exists(json.id)"),
    ("exists(a, b)", "at column 9: exists() takes one value"),
    ("exists(a", "at column 9: expected ')' to close exists( at column 1"),
    ("len()", "at column 5: len() takes one value"),
    ("len(a, b)", "at column 6: len() takes one value"),
    ("lower(a b)", "at column 9: expected ')' to close lower( at column 1, found 'b'"),
    ("len(", "at column 5: expected a value after 'len('"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[0] or "<empty>" for e in ERRORS])
def test_error_messages(text, message):
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert str(caught.value) == message
    assert caught.value.column == int(message.split()[2].rstrip(":"))


def test_condition_error_is_a_value_error():
    assert issubclass(ConditionError, ValueError)
    with pytest.raises(ValueError, match="found nothing"):
        compile_condition("")


def test_non_text_is_refused():
    with pytest.raises(ConditionError, match="at column 1: a condition is text, not int"):
        compile_condition(404)  # type: ignore[arg-type]
