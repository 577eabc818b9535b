"""The strict JSON scanner over raw bytes (``flask_batch.wire.jsontext``).

Why: the JSON batch reader finds and checks values with it instead of ``json.loads``, which
builds every array and object before anything can be checked. It must accept exactly what a
strict RFC 8259 parser accepts (nested at most ``MAX_DEPTH`` levels), say where a text stops
being JSON, decode strings as ``json`` does, and cost work in proportion to the text whatever
its shape: ``scanned`` counts the bytes it examines, so that is tested without a clock.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_batch.wire.json_bodies import _finite, _refuse_constant, loads_strict
from flask_batch.wire.jsontext import (
    MAX_DEPTH,
    InvalidJson,
    JsonText,
    Member,
    NotUtf8,
    ascii_value_span,
)

from .properties import PROPERTY


def value_end(data: bytes) -> int:
    """Where the one value of ``data`` ends (InvalidJson if it is not one)."""
    text = JsonText(data)
    return text.value_end(text.space(text.start))


def accepts(data: bytes) -> bool:
    """Whether ``data`` is one JSON value, white space around it allowed."""
    text = JsonText(data)
    try:
        end = text.value_end(text.space(text.start))
    except InvalidJson:
        return False
    return text.space(end) == len(data)


def strict(data: bytes) -> bool:
    """Whether a strict parser (``json`` without NaN and Infinity) reads ``data``."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(data, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return True


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def span(data: bytes) -> tuple[int, int] | None:
    """Where the one value of ``data`` is, white space around it left out, as a
    :class:`JsonText` finds it; None if ``data`` is not one value."""
    try:
        text = JsonText(data)
        start = text.space(text.start)
        end = text.value_end(start)
    except (InvalidJson, NotUtf8):
        return None
    return (start, end) if text.space(end) == len(data) else None


# --------------------------------------------------------------------------------------------
# What is JSON


@pytest.mark.parametrize(
    "data",
    [
        b"0",
        b"-0",
        b"-0.5e-3",
        b"1E+2",
        b"123456789012345678901234567890",
        b"1e400",  # beyond a double: valid JSON, passed on as it is written
        b"true",
        b"null",
        b'""',
        b'"\\u00e9\\ud83d\\ude00 \\" \\\\ \\/ \\b\\f\\n\\r\\t"',
        b'"\\ud800"',  # a lone surrogate escape is valid JSON (RFC 8259 section 8.2)
        '"Zoë 世界 😀 \x7f"'.encode(),
        b"[]",
        b"{}",
        b' [ 1 , [ ] , { } , { "a" : [ null ] } ] ',
        b'{"a": {"b": {"c": []}}, "d": [{"e": 1}]}',
        b'{"a": 1, "a": 2}',  # names twice: valid JSON (the batch reader refuses it)
        nested(MAX_DEPTH),
        b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    ],
)
def test_valid_json_is_accepted(data: bytes) -> None:
    assert strict(data)
    assert accepts(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b" ",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"0x10",
        b"tru",
        b"True",
        b"'a'",
        b'"a',
        b'"\\x41"',
        b'"\\u12"',
        b'"a\tb"',  # a raw control character in a string
        b'["abc\x00"]',
        b"[1,]",
        b"[,1]",
        b"[1 2]",
        b"[1}",
        b"{1: 2}",
        b'{"a"}',
        b'{"a" 1}',
        b'{"a": }',
        b'{"a": 1,}',
        b'{"a": 1 "b": 2}',
        b'{"a": 1]',
        b'["a": 1]',
        b"{{}}",
        b'{"a": 1, {}}',  # a value without a name after a comma
        b"[{]}",
        b"{[}]",
        b"[[]",
        b"[]]",
        b"1 2",
        b"[] x",
    ],
)
def test_invalid_json_is_refused(data: bytes) -> None:
    assert not strict(data)
    assert not accepts(data)


@pytest.mark.parametrize(
    ("data", "position"),
    [
        (nested(MAX_DEPTH + 1), MAX_DEPTH),
        (nested(100_000), MAX_DEPTH),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), 5 * MAX_DEPTH),
        (b'[1, {"a": ' + nested(MAX_DEPTH) + b"}]", 10 + MAX_DEPTH - 2),
    ],
)
def test_deeper_than_the_bound_is_refused_where_it_goes_too_deep(
    data: bytes, position: int
) -> None:
    assert strict(data) or len(data) > 100_000  # JSON, only too deep (json's recursion aside)
    with pytest.raises(InvalidJson, match=f"deeper than {MAX_DEPTH} levels") as caught:
        value_end(data)
    assert caught.value.position == position


@pytest.mark.parametrize(
    ("data", "position", "found"),
    [
        (b"[1, 2, x]", 7, "x"),
        (b"[1 2]", 3, "2"),
        (b'{"a": 1,}', 7, ","),
        (b'{"a": 1]', 7, "]"),
        (b'{"a": [1, {"b": tru}]}', 16, "tru"),
        (b'{"a" 1}', 1, '"a"'),
        (b"[[[", 3, None),
    ],
)
def test_an_error_says_where(data: bytes, position: int, found: str | None) -> None:
    with pytest.raises(InvalidJson) as caught:
        value_end(data)
    assert caught.value.position == position
    if found is None:
        assert "ends" in caught.value.reason
    else:
        assert repr(found)[1:-1] in caught.value.reason


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


@PROPERTY
@given(value=JSON_VALUES, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans())
def test_what_json_writes_is_read_to_its_end(
    value: Any, indent: int | None, ascii_only: bool
) -> None:
    data = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    assert value_end(data) == len(data)
    assert value_end(data + b", 1") == len(data)


@st.composite
def mangled(draw: st.DrawFn, alphabet: bytes) -> bytes:
    """A JSON text as ``json`` writes it (ASCII), with up to 3 bytes of ``alphabet`` put in
    and up to 2 taken out: mostly texts that nearly are JSON."""
    data = bytearray(json.dumps(draw(JSON_VALUES)).encode())
    edits = st.tuples(st.integers(min_value=0), st.sampled_from(list(alphabet)))
    for at, byte in draw(st.lists(edits, max_size=3)):
        data.insert(at % (len(data) + 1), byte)
    for at in draw(st.lists(st.integers(min_value=0), max_size=2)):
        if data:
            del data[at % len(data)]
    return bytes(data)


@PROPERTY
@given(data=mangled(b'[]{},:"\\ 01aex-'))
def test_accepts_exactly_what_a_strict_parser_accepts(data: bytes) -> None:
    assert accepts(data) == strict(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b" ",
        b"\x00",
        b"\x00\x00\x00[",  # what looks like UTF-32
        b"[\x00]",
        b' {"a": [1, 2.5e-3, "x\\u00e9"], "b": null} \r\n',
        b"\t1\t",
        b"1 2",
        b"[] x",
        b"\x0b1",  # a vertical tab is not JSON's white space
        nested(MAX_DEPTH),
        nested(MAX_DEPTH + 1),
        b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
        b'"\\ud800"',
    ],
)
def test_an_ascii_value_is_found_where_the_text_finds_it(data: bytes) -> None:
    # The answer writer's short way for ASCII bodies (json_bodies.json_value_span).
    assert ascii_value_span(data) == span(data)


@PROPERTY
@given(data=mangled(b'[]{},:"\\ \t\x000aex-'))
def test_ascii_value_span_agrees_with_the_text_on_any_ascii(data: bytes) -> None:
    assert ascii_value_span(data) == span(data)


def _around(depth: int, inner: bytes, kinds: str) -> bytes:
    """``inner`` inside ``depth`` arrays and objects, taken in turn from ``kinds``."""
    for level in range(depth):
        if kinds[level % len(kinds)] == "a":
            inner = b"[0, " + inner + b"]"
        else:
            inner = b'{"k": 1, "v": ' + inner + b"}"
    return inner


@pytest.mark.parametrize("depth", range(12))
@pytest.mark.parametrize("kinds", ["a", "o", "ao", "oa"])
@pytest.mark.parametrize(
    "inner", [b"1", b"[]", b"{}", b"[1,]", b'{"a":1,}', b"[1 2]", b"tru", b'"x\\u00e9"']
)
def test_an_ascii_value_is_found_as_the_text_finds_it_at_every_depth(
    depth: int, kinds: str, inner: bytes
) -> None:
    # The values at most a few levels deep are matched by a shorter pattern first, the
    # others by the full one: the same answer either side of that depth, valid or not.
    data = _around(depth, inner, kinds)
    assert ascii_value_span(data) == span(data)
    assert ascii_value_span(data + b" x") is None


def _outcome(read: Any, data: bytes | str) -> tuple[str, Any]:
    try:
        return "read", read(data)
    except (ValueError, TypeError, RecursionError) as error:
        return type(error).__name__, str(error)


@PROPERTY
@given(
    data=mangled(b'[]{},:"\\ 01aex-NIf')
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.sampled_from(["\ufeff1", b"\xef\xbb\xbf1", '"\\ud800"', "NaN", "1e999", b"\xff"])
    | st.builds(
        lambda text, encoding: text.encode(encoding),
        st.text(max_size=10),
        st.sampled_from(["utf-8", "utf-16", "utf-32-le", "utf-8-sig"]),
    )
)
def test_loads_strict_reads_as_json_loads_with_its_options(data: bytes | str) -> None:
    # json_bodies.loads_strict keeps one decoder instead of json.loads building one per call.
    def reference(value: bytes | str) -> Any:
        return json.loads(value, parse_constant=_refuse_constant, parse_float=_finite)

    assert _outcome(loads_strict, data) == _outcome(reference, data)


# --------------------------------------------------------------------------------------------
# Encodings


def test_a_utf8_byte_order_mark_is_skipped() -> None:
    text = JsonText(b"\xef\xbb\xbf[1]")
    assert text.start == 3
    assert text.value_end(text.start) == len(text.data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_are_refused(encoding: str) -> None:
    with pytest.raises(NotUtf8, match="must be UTF-8"):
        JsonText('{"requests": []}'.encode(encoding))


@pytest.mark.parametrize(
    ("data", "position"),
    [
        (b'["\xff"]', 2),
        (b'["\xc3"]', 2),  # cut short
        (b'["\xed\xa0\x80"]', 2),  # a surrogate encoded in UTF-8
        (b'["\xc0\xaf"]', 2),  # overlong
        (b"[1]" + b" " * (1024 * 1024 - 4) + b"\xe2\x82\xac\xff", 1024 * 1024 + 2),
    ],
)
def test_invalid_utf8_anywhere_is_refused_where_it_is(data: bytes, position: int) -> None:
    with pytest.raises(NotUtf8, match=f"invalid UTF-8 at byte {position}"):
        JsonText(data)


# --------------------------------------------------------------------------------------------
# Members and strings


def test_members_are_read_one_by_one_with_their_names_decoded() -> None:
    data = b'{"a": 1, "\\u0062": [2, {"c": 3}] , "d":"x"}'
    text = JsonText(data)
    members = []
    member = text.member(0, first=True)
    while isinstance(member, Member):
        members.append((member.name, data[member.start : member.end]))
        member = text.member(member.end, first=False)
    assert members == [(b"a", b"1"), (b"b", b'[2, {"c": 3}]'), (b"d", b'"x"')]
    assert member == len(data)
    assert JsonText(b"{ }").member(0, first=True) == 3


@pytest.mark.parametrize(
    "inside",
    [
        "plain ascii",
        "Zoë € 世界 😀",
        'escapes \\n \\t \\" \\\\ \\/ \\u00e9 \\ud83d\\ude00',
        # Long enough to be decoded in several pieces, a surrogate pair at every offset.
        "a" * 70_000 + "\\ud83d\\ude00" * 30_000 + "é" * 50_000 + "\\n" * 70_000,
        "é" * 100_000 + "\\u00e9" + "😀" * 70_000,
    ],
)
@pytest.mark.parametrize("charset", ["utf-8", "utf-16", "latin-1", "utf-32-be"])
def test_a_string_is_encoded_as_json_decodes_it(inside: str, charset: str) -> None:
    data = ('"' + inside + '"').encode()
    expected_text = json.loads(data)
    text = JsonText(data)
    try:
        expected = expected_text.encode(charset)
    except UnicodeEncodeError:
        with pytest.raises(ValueError, match="encode"):
            text.encoded(1, len(data) - 1, charset)
        return
    assert text.encoded(1, len(data) - 1, charset) == expected
    if len(data) < 1000:
        assert text.text(1, len(data) - 1) == expected_text


def test_a_lone_surrogate_escape_is_kept_in_names_and_refused_in_utf8_bodies() -> None:
    text = JsonText(b'"\\ud800"')
    assert text.utf8(1, 7) == "\ud800".encode("utf-8", "surrogatepass")
    with pytest.raises(ValueError, match="surrogate"):
        text.encoded(1, 7, "utf-8")


def test_encoding_stops_once_past_the_limit() -> None:
    inside = "\\u0041" * 400_000
    data = ('"' + inside + '"').encode()
    encoded = JsonText(data).encoded(1, len(data) - 1, "utf-8", limit=1000)
    assert 1000 < len(encoded) < 300_000


# --------------------------------------------------------------------------------------------
# Work in proportion to the text, whatever its shape


SIZE = 200_000


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"[" + b",".join([b"[]"] * (SIZE // 3)) + b"]", id="brackets"),
        pytest.param(b"[" + b",".join([b"{}"] * (SIZE // 3)) + b"]", id="objects"),
        pytest.param(b"[" + b",".join([b"1"] * (SIZE // 2)) + b"]", id="numbers"),
        pytest.param(b"[" + b",".join([nested(MAX_DEPTH)] * (SIZE // 130)) + b"]", id="deep-each"),
        pytest.param(b'"' + b"\\n" * (SIZE // 2) + b'"', id="escapes"),
        pytest.param(b"[" + b",".join([b"[]"] * (SIZE // 3)) + b",x]", id="invalid-at-the-end"),
        pytest.param(b'"' + b"a" * SIZE, id="unterminated-string"),
        pytest.param(nested(SIZE // 2), id="too-deep"),
        pytest.param(b"[" * MAX_DEPTH + b"1," * (SIZE // 2) + b"x", id="invalid-deep-inside"),
    ],
)
def test_reading_a_value_costs_a_few_passes_at_most(data: bytes) -> None:
    text = JsonText(data)
    with contextlib.suppress(InvalidJson):
        text.value_end(text.start)
    assert text.scanned <= 4 * len(data) + 100, text.scanned / len(data)
