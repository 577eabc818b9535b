"""Strict JSON text (RFC 8259, UTF-8) read over its raw bytes, without building Python values.

``json.loads`` builds every array and object of a document: ``[[],[],...]`` costs about 20
bytes of memory per byte of text, before anything can be checked. A :class:`JsonText` instead
finds where each value ends and checks it is valid JSON, with one regular-expression match per
value: in C, in time linear in the value (every quantifier is possessive and every alternative
atomic, so nothing is ever tried twice), holding nothing but positions. Only the small values
a caller asks for (a string, an object of strings) are decoded.

A regular expression cannot count brackets, so the pattern of a value is unrolled
:data:`MAX_DEPTH` times: one level per array or object, each level holding the next once. So
a value nests at most :data:`MAX_DEPTH` levels; a deeper one is refused, never recursed into.

Each byte examined is counted in :attr:`JsonText.scanned`, so tests can check that reading a
text costs time in proportion to its size whatever its shape.

Why one file of this length: the unrolled patterns and the reader that matches them are one
thing (the groups a pattern numbers are the ones the reader reads back), and half of it is
the patterns' own documentation.
"""

from __future__ import annotations

import codecs
import json
import mmap
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import NamedTuple

__all__ = [
    "MAX_DEPTH",
    "OPEN_ARRAY",
    "OPEN_OBJECT",
    "STRING",
    "STRINGS_ARRAY",
    "STRINGS_OBJECT",
    "Buffer",
    "InvalidJson",
    "JsonText",
    "Member",
    "NotUtf8",
    "Span",
    "ascii_value_span",
    "object_pattern",
    "value_pattern",
]

#: Deepest nesting of arrays and objects in one value: System.Text.Json's and Json.NET's
#: default bound (the .NET clients of Microsoft Graph read and write JSON with them).
MAX_DEPTH = 64
#: The first byte of an object and of an array.
OPEN_OBJECT = ord("{")
OPEN_ARRAY = ord("[")

_WS = rb"[ \t\n\r]*+"
#: The inside of a string: unescaped characters (not '"', '\\' or a control character) and
#: escapes. Non-ASCII bytes pass here: the whole text was checked to be UTF-8 first.
_CONTENTS = rb'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*+'
_STRING = rb'"' + _CONTENTS + rb'"'
_NUMBER = rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_SCALAR = _STRING + rb"|" + _NUMBER
_LITERAL = rb"true|false|null"
_KEY = _STRING + _WS + rb":" + _WS + rb"(?![\]}])"  # a member's name; its value follows
_STRING_PAIR = _STRING + _WS + rb":" + _WS + _STRING + _WS

#: Patterns of a string, an object of strings, an array of strings (for :func:`object_pattern`).
STRING = _STRING
STRINGS_OBJECT = (
    rb"\{" + _WS + rb"(?:" + _STRING_PAIR + rb"(?:," + _WS + _STRING_PAIR + rb")*+)?+\}"
)
STRINGS_ARRAY = (
    rb"\[" + _WS + rb"(?:" + _STRING + _WS + rb"(?:," + _WS + _STRING + _WS + rb")*+)?+\]"
)


def _value_pattern(depth: int, *, diagnose: bool, group: int = 1) -> tuple[bytes, int]:
    """The pattern of one value nesting at most ``depth`` arrays and objects, and the number
    of the first capturing group after it (``group``: the number of its own first one).

    Level ``k`` (a container whose values nest at most ``k - 1`` levels) holds level ``k - 1``
    once, so the pattern grows linearly with the depth. Arrays and objects share one pattern:
    group ``g<k>`` holds "{" in an object and "" in an array, set anew on entering each
    container. ``(?!(?P=g<k>))`` then holds in an object and ``(?=(?P=g<k>))`` in an array,
    tested only where the next byte cannot be "{" (a comma, a closing bracket, a "[").

    ``diagnose``: instead of failing, the match ends where the text stops being valid JSON (or
    where a value nests too deep), and a group of the innermost level records where: ``o<k>``
    (no member name after "{"), ``v<k>`` (no value), ``s<k>`` (neither "," nor a closing
    bracket after a value) or ``u<k>`` (no closing bracket). Every level around it then ends
    at once, setting its ``u<k>``: conditionals (by group number, as some come later in the
    pattern) stop each loop once a group of its level, or the ``u`` of the level inside, took
    part.
    """
    if depth == 0:
        return rb"(?>" + _SCALAR + rb"|" + _LITERAL + rb")", group
    g_name = b"g%d" % depth
    in_object = rb"(?!(?P=" + g_name + rb"))"
    in_array = rb"(?=(?P=" + g_name + rb"))"
    hatch: dict[str, int] = {}
    if diagnose:
        hatch["o"] = group + 1
        child, after_child = _value_pattern(depth - 1, diagnose=True, group=group + 2)
        hatch.update(v=after_child, s=after_child + 1)
        end_group = after_child + 3
    else:
        child, end_group = _value_pattern(depth - 1, diagnose=False, group=group + 1)

    def record(kind: str) -> bytes:
        return rb"|(?P<" + kind.encode() + b"%d>)" % depth if diagnose else b""

    opener = (
        rb"(?P<" + g_name + rb">\{|)"
        + rb"(?:" + in_object + _WS + rb"(?:" + _KEY + rb"|(?=\})" + record("o") + rb")"
        + rb"|" + in_array + rb"\[" + _WS + rb")"
    )  # fmt: skip
    separator = (
        rb"(?:" + in_object + rb"," + _WS + _KEY
        + rb"|" + in_array + rb"," + _WS + rb"(?![\]}])"
        + rb"|" + in_object + rb"(?=\})|" + in_array + rb"(?=\])" + record("s") + rb")"
    )  # fmt: skip
    closer = rb"(?:" + in_object + rb"\}|" + in_array + rb"\])"
    if not diagnose:
        container = opener + rb"(?:" + child + _WS + separator + rb")*+" + closer
    else:
        # The groups whose taking part ends this level: its own, and the inner level's u
        # (the last group of the inner level).
        flags = [hatch["o"], hatch["v"], hatch["s"]] + ([hatch["v"] - 1] if depth > 1 else [])
        unflagged = b"".join(b"(?(%d)(?!)|" % flag for flag in flags) + b")" * len(flags)
        after_value = _WS + separator
        if depth > 1:
            after_value = b"(?(%d)|" % flags[-1] + after_value + b")"
        # No element starts at a closing bracket: a value is missing only after "," or "[".
        element = (
            unflagged + rb"(?![\]}])(?:" + child + record("v") + rb")"
            + b"(?(%d)|" % hatch["v"] + after_value + b")"
        )  # fmt: skip
        ending = rb"(?:" + unflagged + closer + record("u") + rb")"
        container = opener + rb"(?:" + element + rb")*+" + ending
    value = (
        rb"(?>" + _SCALAR + rb"|\[" + _WS + rb"\]|\{" + _WS + rb"\}|" + container
        + rb"|" + _LITERAL + rb")"
    )  # fmt: skip
    return value, end_group


def value_pattern() -> bytes:
    """The pattern of a value nesting at most :data:`MAX_DEPTH` levels (its groups are
    named ``g1`` to ``g64``)."""
    return _value_pattern(MAX_DEPTH, diagnose=False)[0]


def object_pattern(members: Sequence[tuple[str, bytes]]) -> bytes:
    """The pattern of an object whose members are among ``members`` (name, pattern of the
    value), each at most once, written without escapes: the value of member ``i`` (from 0)
    is captured in group ``i + 1``, named after it. Only the last member's pattern may hold
    groups. An object with other members does not match (nor does one with a member twice).
    """
    alternatives = []
    for number, (name, value) in enumerate(members, start=1):
        # A member seen already (its group took part) fails the match.
        alternatives.append(
            b'"%s"' % name.encode() + _WS + rb":" + _WS
            + b"(?(%d)(?!)|(?P<%s>" % (number, name.encode()) + value + rb"))"
        )  # fmt: skip
    member = rb"(?:" + rb"|".join(alternatives) + rb")"
    # Each group once in the pattern: one member, then "," and another name, or the end.
    return rb"\{" + _WS + rb"(?:" + member + _WS + rb"(?:," + _WS + rb'(?=")|(?=\})))*+\}'


@cache
def _value_matcher(diagnose: bool) -> re.Pattern[bytes]:
    """Compiled on first use (a few hundredths of a second): a process that never reads a
    JSON batch never pays it, and the diagnosing pattern is compiled for the first error."""
    return re.compile(_value_pattern(MAX_DEPTH, diagnose=diagnose)[0])


def _shallow_value_pattern(depth: int) -> bytes:
    """The pattern of one value nesting at most ``depth`` arrays and objects, written as the
    grammar says (an array of values, an object of members), without the groups and
    back-references that keep :func:`_value_pattern`'s size linear in the depth (this one
    doubles with each level), so only shallow values are matched with it."""
    if depth == 0:
        return rb"(?>" + _SCALAR + rb"|" + _LITERAL + rb")"
    child = _shallow_value_pattern(depth - 1)
    # After an element, a "," with another element to come, or the closing bracket.
    array = rb"\[" + _WS + rb"(?:" + child + _WS + rb"(?:," + _WS + rb"(?=[^\]])|(?=\])))*+\]"
    member = _STRING + _WS + rb":" + _WS + child + _WS
    object_ = rb"\{" + _WS + rb"(?:" + member + rb"(?:," + _WS + rb'(?=")|(?=\})))*+\}'
    return rb"(?>" + _SCALAR + rb"|" + _LITERAL + rb"|" + array + rb"|" + object_ + rb")"


@cache
def _shallow_matcher() -> re.Pattern[bytes]:
    """A value nesting at most :data:`_SHALLOW_DEPTH` levels (:func:`_shallow_value_pattern`)."""
    return re.compile(_shallow_value_pattern(_SHALLOW_DEPTH))


#: How deep the values :func:`ascii_value_span` matches first without back-references nest:
#: bodies mostly nest a few levels, and a value that pattern does not match (deeper, or not
#: JSON) is matched again by the full one, so a body costs at most two linear matches.
_SHALLOW_DEPTH = 6


@cache
def _member_matcher() -> re.Pattern[bytes]:
    """A member and its value: "{" or "," before it (group 1), the inside of its name (2),
    its value (3)."""
    value = _value_pattern(MAX_DEPTH, diagnose=False)[0]
    return re.compile(_WS + rb"([{,])" + _WS + _INSIDE + _WS + rb":" + _WS + rb"(" + value + rb")")


_SPACE = re.compile(_WS)


def ascii_value_span(data: bytes | bytearray) -> tuple[int, int] | None:
    """Where the one JSON value of ASCII ``data`` starts and ends, without the white space
    around it; None if it holds anything else. What a :class:`JsonText` of it finds, in three
    matches: ASCII is UTF-8 already, with no byte order mark to skip, and a NUL (what the
    text's look for UTF-16 and UTF-32 refuses) can be neither white space nor in a value.

    A shallow value is matched first by a faster pattern (1.6 against 2.3 µs for an answer
    of the benchmark's workload). It has the same grammar: both match the longest value at
    ``start``, so where the first matches, the second would have matched the same bytes."""
    size = len(data)
    start = _SPACE.match(data, 0, size).end()  # type: ignore[union-attr]  # matches always
    value = _shallow_matcher().match(data, start, size) or _value_matcher(False).match(
        data, start, size
    )
    if value is None:
        return None
    end = value.end()
    return (start, end) if _SPACE.match(data, end, size).end() == size else None  # type: ignore[union-attr]


_INSIDE = rb'"(' + _CONTENTS + rb')"'  # a string, its inside captured
_FIRST_MEMBER = re.compile(rb"\{" + _WS + _INSIDE + _WS + rb":" + _WS)
_NEXT_MEMBER = re.compile(_WS + rb"," + _WS + _INSIDE + _WS + rb":" + _WS)
_EMPTY_OBJECT = re.compile(rb"\{" + _WS + rb"\}")
_OBJECT_END = re.compile(_WS + rb"\}")
_FIRST_ELEMENT = re.compile(rb"\[" + _WS + rb"(?!\])")
_NEXT_ELEMENT = re.compile(_WS + rb"," + _WS)
_EMPTY_ARRAY = re.compile(rb"\[" + _WS + rb"\]")
_ARRAY_END = re.compile(_WS + rb"\]")
_INSIDE_PAIR = re.compile(_INSIDE + _WS + rb":" + _WS + _INSIDE)
_INSIDE_STRING = re.compile(_INSIDE)
_STRINGS_OBJECT = re.compile(STRINGS_OBJECT)
_STRINGS_ARRAY = re.compile(STRINGS_ARRAY)
#: A piece of a string's inside that can be decoded on its own (up to 256 KiB): whole UTF-8
#: characters and whole escapes, a surrogate pair's two escapes together.
_PIECE = re.compile(
    rb"(?:[\x00-\x5b\x5d-\x7f]{1,64}+|(?:[\xc0-\xff][\x80-\xbf]*+){1,16}+"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[^u]"
    rb"){1,4096}+"
)
_QUOTE = ord('"')
_UTF8_CHUNK = 1024 * 1024
_UTF8_BOM = codecs.BOM_UTF8


class InvalidJson(ValueError):
    """The text is not strict JSON (or nests deeper than :data:`MAX_DEPTH`) at ``position``."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at byte {position}")
        self.reason = reason
        self.position = position


class NotUtf8(ValueError):
    """The text is not UTF-8 (RFC 8259 section 8.1: JSON exchanged between systems is)."""


#: Where something in the text starts and ends: a value, the inside of a string.
Span = tuple[int, int]


class Member(NamedTuple):
    """A member of an object: its name as UTF-8 (escapes decoded, so that two spellings of a
    name are equal), and where its value starts and ends."""

    name: bytes
    start: int
    end: int


#: What a text is read from: bytes, an anonymous memory map (a large body is kept out of
#: Python's heap), or a bytearray (an application's answer gathered from several chunks).
Buffer = bytes | bytearray | mmap.mmap


class JsonText:
    """One JSON text being read: positions are byte offsets into :attr:`data`."""

    def __init__(self, data: Buffer, size: int | None = None) -> None:
        """The text is ``data[:size]`` (by default all of it). Checks the encoding: UTF-8
        only; a UTF-8 byte order mark is skipped (RFC 8259 section 8.1 lets a parser ignore
        it), UTF-16 and UTF-32 are refused (NotUtf8)."""
        self.data = data
        self.size = len(data) if size is None else size
        #: Bytes examined so far: by every match (a failed one as far as it may have looked:
        #: to the end of the text, unless a bound is known), decoding and copying.
        self.scanned = 0
        self.start = len(_UTF8_BOM) if data[: len(_UTF8_BOM)] == _UTF8_BOM else 0
        _check_utf8(data, self.size)
        self.scanned += self.size

    def space(self, position: int) -> int:
        """Where the white space from ``position`` ends."""
        end = _SPACE.match(self.data, position, self.size).end()  # type: ignore[union-attr]
        self.scanned += end - position
        return end

    def value_end(self, position: int) -> int:
        """Where the value starting at ``position`` ends; InvalidJson if there is none."""
        match = self.match(_value_matcher(False), position)
        if match is None:
            raise self._diagnose(position)
        return match.end()

    def byte(self, position: int) -> int:
        """The byte at ``position`` (-1 at the end of the text)."""
        return self.data[position] if position < self.size else -1

    def raw(self, start: int, end: int) -> bytes:
        """The text from ``start`` to ``end`` (a value as it was written, say)."""
        self.scanned += end - start
        return bytes(self.data[start:end])  # a slice of bytes is bytes already: no copy

    # Objects: the members one by one; where the object ends, after the last

    def member(self, position: int, *, first: bool) -> Member | int:
        """The first member of the object whose "{" is at ``position`` (``first``), or the
        member after the value that ended at ``position``; where the object ends, after it."""
        step = self._step(_member_matcher(), _EMPTY_OBJECT if first else _OBJECT_END, position)
        if isinstance(step, int):
            return step
        if step is not None and (step[1] == b"{") is first:
            name = step[2]
            if b"\\" in name:
                name = self.utf8(*step.span(2))
            return Member(name, step.start(3), step.end())
        # Not valid JSON: say where.
        name_only = self.member_name(position, first=first)
        if isinstance(name_only, tuple):
            self.value_end(name_only[1])
        raise AssertionError("a member failed to match, then matched")  # pragma: no cover

    def member_name(self, position: int, *, first: bool) -> tuple[bytes, int] | int:
        """As :meth:`member`, without reading the value: the member's name and where its
        value starts."""
        pattern, end = (_FIRST_MEMBER, _EMPTY_OBJECT) if first else (_NEXT_MEMBER, _OBJECT_END)
        step = self._step(pattern, end, position)
        if isinstance(step, int):
            return step
        if step is None:
            expected = 'a member name or "}"' if first else '"," and a member, or "}"'
            raise self.unexpected(position + first, expected)
        name = step[1]
        if b"\\" in name:
            name = self.utf8(*step.span(1))
        return name, step.end()

    # Arrays: (True, where a value starts), then (False, where the array ends)

    def first_element(self, position: int) -> tuple[bool, int]:
        """Where the first value of the array at ``position`` ("[") starts."""
        step = self._step(_FIRST_ELEMENT, _EMPTY_ARRAY, position)
        if step is None:
            raise self.unexpected(position + 1, 'a value or "]"')
        return (False, step) if isinstance(step, int) else (True, step.end())

    def next_element(self, position: int) -> tuple[bool, int]:
        """Where the value after the one that ended at ``position`` starts."""
        step = self._step(_NEXT_ELEMENT, _ARRAY_END, position)
        if step is None:
            raise self.unexpected(position, '"," or "]"')
        return (False, step) if isinstance(step, int) else (True, step.end())

    def _step(
        self, pattern: re.Pattern[bytes], end: re.Pattern[bytes], position: int
    ) -> re.Match[bytes] | int | None:
        """The next member or value (``pattern``), or else where the object or array ends
        (``end``), or else None: the text is not valid there."""
        data, size = self.data, self.size
        match = pattern.match(data, position, size)
        if match is not None:
            self.scanned += match.end() - position
            return match
        closing = end.match(data, position, size)
        if closing is not None:
            # The failed match went no further than this one: the white space, the bracket.
            self.scanned += 2 * (closing.end() - position)
            return closing.end()
        self.scanned += 2 * (size - position)
        return None

    # Values of a given shape

    def is_string(self, start: int) -> bool:
        """Whether the value at ``start`` (known to be valid) is a string."""
        return self.data[start] == _QUOTE

    def is_strings_object(self, start: int, end: int) -> bool:
        """Whether the value from ``start`` to ``end`` is an object of strings."""
        self.scanned += end - start
        return _STRINGS_OBJECT.fullmatch(self.data, start, end) is not None

    def string_pairs(self, start: int, end: int) -> Iterator[tuple[Span, Span]]:
        """The insides of the (name, value) pairs of an object of strings (from ``start`` to
        ``end``, as :meth:`is_strings_object` checked it)."""
        for match in _INSIDE_PAIR.finditer(self.data, start, end):
            self.scanned += match.end() - match.start()
            yield match.span(1), match.span(2)

    def is_strings_array(self, start: int, end: int) -> bool:
        """Whether the value from ``start`` to ``end`` is an array of strings."""
        self.scanned += end - start
        return _STRINGS_ARRAY.fullmatch(self.data, start, end) is not None

    def strings(self, start: int, end: int) -> Iterator[Span]:
        """The insides of the strings of an array of strings (from ``start`` to ``end``, as
        :meth:`is_strings_array` checked it)."""
        for match in _INSIDE_STRING.finditer(self.data, start, end):
            self.scanned += match.end() - match.start()
            yield match.span(1)

    # Decoding a string's inside (a span from the methods above)

    def text(self, start: int, end: int) -> str:
        """A string's inside as text (for short strings: the caller bounds their size)."""
        inside = self.data[start:end]
        self.scanned += 2 * (end - start)
        if b"\\" not in inside:
            return inside.decode("utf-8")
        decoded: str = json.loads(b'"' + inside + b'"')
        return decoded

    def utf8(self, start: int, end: int) -> bytes:
        """A string's inside as UTF-8, escapes decoded (a lone surrogate escape kept, encoded
        as Python's "surrogatepass" does), so that two spellings of a name compare equal."""
        return self.encoded(start, end, "utf-8", "surrogatepass")

    def encoded(
        self, start: int, end: int, charset: str, errors: str = "strict", limit: int = -1
    ) -> bytes:
        """A string's inside encoded in ``charset``, decoded piece by piece so that the text
        is never held whole (a str of one astral character and n ASCII ones takes 4n bytes).

        ``limit``: stop once the result is longer (the caller refuses it). ValueError (or
        LookupError) if the charset is unknown or cannot encode the string.
        """
        data = self.data
        self.scanned += end - start
        if data.find(b"\\", start, end) < 0 and codecs.lookup(charset).name == "utf-8":
            self.scanned += end - start
            return bytes(data[start:end])  # a slice of bytes is bytes already: no copy
        encoder = codecs.getincrementalencoder(charset)(errors)
        pieces: list[bytes] = []
        size = 0
        for match in _PIECE.finditer(data, start, end):
            self.scanned += 2 * (match.end() - match.start())
            piece = encoder.encode(json.loads(b'"' + match[0] + b'"'))
            pieces.append(piece)
            size += len(piece)
            if 0 <= limit < size:
                break
        pieces.append(encoder.encode("", True))
        return b"".join(pieces)

    # Errors

    def unexpected(self, position: int, expected: str) -> InvalidJson:
        """The error for a text that does not go on as ``expected`` at ``position``."""
        position = self.space(position)
        if position >= self.size:
            return InvalidJson(f"the text ends where {expected} should be", position)
        found = self.data[position : position + 8].decode("utf-8", "replace")
        return InvalidJson(f"{expected} expected, {found!r} found", position)

    def match(
        self, pattern: re.Pattern[bytes], position: int, *, charge_failure: bool = True
    ) -> re.Match[bytes] | None:
        """``pattern`` matched at ``position``, counted in :attr:`scanned`; a failure counts
        as the rest of the text unless ``charge_failure`` is false (the caller counts it)."""
        match = pattern.match(self.data, position, self.size)
        if match is not None:
            self.scanned += match.end() - position
        elif charge_failure:  # it may have looked at everything after its start
            self.scanned += self.size - position
        return match

    def _diagnose(self, position: int) -> InvalidJson:
        """Where (and why) the value at ``position`` stops being valid: one more match."""
        match = self.match(_value_matcher(True), position)
        if match is None:
            return self.unexpected(position, "a value")
        for level in range(1, MAX_DEPTH + 1):
            for kind in "ovsu":
                where = match.start(f"{kind}{level}")
                if where < 0:
                    continue
                if kind == "v" and level == 1 and self.byte(where) in b"[{":
                    return InvalidJson(
                        f"arrays and objects nest deeper than {MAX_DEPTH} levels", where
                    )
                expected = {
                    "o": 'a member (a name, ":" and a value) or "}"',
                    "v": "a value",
                    "s": '"," or a closing bracket',
                    "u": '"," or a closing bracket',
                }[kind]
                return self.unexpected(where, expected)
        raise AssertionError("a value failed to match, then matched")  # pragma: no cover


def _check_utf8(data: Buffer, size: int) -> None:
    """NotUtf8 unless ``data[:size]`` is UTF-8 (in pieces: a str of the whole could take 4x)."""
    # UTF-16 and UTF-32 put a NUL byte beside each ASCII character ("{" is "{\0" or
    # "\0{"...), or start with a byte order mark that is invalid UTF-8.
    head = data[: min(4, size)]
    if b"\x00" in head or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise NotUtf8("a JSON batch must be UTF-8 (this one looks like UTF-16 or UTF-32)")
    if size <= _UTF8_CHUNK and data[:size].isascii():
        return  # the common case (an answer's body, a small batch): no decoder to set up
    decoder = codecs.getincrementaldecoder("utf-8")()
    for offset in range(0, size, _UTF8_CHUNK):
        piece = data[offset : min(size, offset + _UTF8_CHUNK)]
        if piece.isascii() and not decoder.getstate()[0]:
            continue
        try:
            decoder.decode(piece)
        except UnicodeDecodeError as error:
            position = max(0, offset + error.start - len(decoder.getstate()[0]))
            raise NotUtf8(f"a JSON batch must be UTF-8: invalid UTF-8 at byte {position}") from None
    if decoder.getstate()[0]:  # the text ends inside a character
        position = size - len(decoder.getstate()[0])
        raise NotUtf8(f"a JSON batch must be UTF-8: invalid UTF-8 at byte {position}")
