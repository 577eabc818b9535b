"""Header fields, shared by MIME part headers and the HTTP messages inside parts.

Parsing takes a whole header block at once: one regular-expression pass in C reads every line
that is well formed, and the block is valid when that is every line (a count of line ends).
Only a block that fails is walked line by line, to unfold it or to say which line is wrong.
"""

from __future__ import annotations

import re

from .errors import LimitExceeded, MalformedBatch
from .model import Headers, Limits

__all__ = [
    "BLANK_LINE",
    "CRLF",
    "FIELD_VALUE",
    "HTTP_FIELD_LINES",
    "MOST_DIGITS",
    "TOKEN",
    "TOKEN_PATTERN",
    "encode_field",
    "encode_fields",
    "encode_text",
    "head_end",
    "number",
    "parse_fields",
    "resume_offset",
]

CRLF = b"\r\n"
#: The most digits a number in a field may have (after leading zeros): more than any length or
#: count this package takes (2**63 has 19). Python's int() takes time that grows with the
#: square of the digits, and refuses over 4,300 with a ValueError: a longer number is refused
#: before int() sees it.
MOST_DIGITS = 19
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Blocks are matched as Latin-1 text: one decode per block instead of two per field.
_TOKEN_TEXT = TOKEN.decode("ascii")
# A field line, anchored at a line start: a match covers exactly one whole line, so a block is
# valid when the matches are as many as its lines. The value starts and ends with a non-blank
# (white space around it is not part of it), so each line matches in exactly one way and a bad
# line fails in linear time (with "[ \t]*([^\r\n]*)" a bad line after n good ones costs 2^n).
_VALUE = r"(?:([^\x00\r\n \t](?:[^\x00\r\n]*[^\x00\r\n \t])?)[ \t]*)?\r?\n"
#: A field's value with the blanks after it, and its line end (group 1: the value and those
#: blanks, to strip). As bytes, for patterns that read a whole part. Any run of bytes but NUL,
#: CR and LF is a value with blanks around it, or blanks alone: what the field patterns read.
FIELD_VALUE = rb"[ \t]*+([^\x00\r\n]*+)\r?\n"
#: Any number of HTTP field lines: what :func:`parse_fields` reads without error, as bytes,
#: without groups, and possessively (a line matches in one way only: none is tried again).
HTTP_FIELD_LINES = rb"(?:" + TOKEN + rb":[^\x00\r\n]*+\r?\n)*+"
# MIME headers may have white space before the colon (RFC 5322 obs-syntax); HTTP may not.
_MIME_FIELD = re.compile("^(" + _TOKEN_TEXT + r")[ \t]*:[ \t]*" + _VALUE, re.MULTILINE)
_HTTP_FIELD = re.compile("^(" + _TOKEN_TEXT + r"):[ \t]*" + _VALUE, re.MULTILINE)
_FIELD_NAME = re.compile(TOKEN)
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
# The blank line that ends a header block: CRLF or bare LF, in any mix.
BLANK_LINE = re.compile(rb"\n\r?\n")


def head_end(data: bytes | bytearray, start: int, resume: int = 0) -> tuple[int, int] | None:
    """Where the header block starting at ``start`` ends: (end of its last line, body start).

    The blank line may be CRLF or a bare LF; an empty block (a blank line at ``start``) ends
    at once. None: no blank line yet; once more bytes arrived, search again with ``resume``
    set to what :func:`resume_offset` said.
    """
    if data.startswith(b"\n", start):
        return start, start + 1
    if data.startswith(b"\r\n", start):
        return start, start + 2
    match = BLANK_LINE.search(data, max(start, resume))
    if match is None:
        return None
    blank = 2 if data[match.end() - 2] == 0x0D else 1
    return match.end() - blank, match.end()


def resume_offset(data: bytes | bytearray) -> int:
    """Where :func:`head_end` may resume after finding nothing: a blank line spans 3 bytes."""
    return max(0, len(data) - 2)


def parse_fields(
    block: bytes | bytearray,
    limits: Limits,
    part: int | None,
    *,
    mime: bool = False,
    seen: dict[bytes, Headers] | None = None,
) -> Headers:
    """The fields of a header block whose every line ends with a line end.

    MIME headers may be folded (the email package folds long Content-IDs); HTTP headers may
    not (RFC 9112 obs-fold is refused). ``seen``: blocks already read under the same limits,
    and their fields (one batch's requests tend to repeat their headers); it is filled in.
    """
    if seen is not None and type(block) is bytes:  # a bytearray cannot be a key
        known = seen.get(block)
        if known is not None:
            return known
    text = block.decode("latin-1")
    field = _MIME_FIELD if mime else _HTTP_FIELD
    fields: list[tuple[str, str]] = field.findall(text)
    if len(fields) != text.count("\n") or (text and not text.endswith("\n")):
        fields = _parse_slowly(text, field, part, mime=mime)
    if len(fields) > limits.max_headers:
        raise LimitExceeded.of(
            limits,
            "max_headers",
            f"the {'part' if mime else 'HTTP'} headers have more than {{value}} fields",
            part=part,
        )
    result = tuple(fields)
    if seen is not None and type(block) is bytes and len(seen) < _SEEN_BLOCKS:
        seen[block] = result
    return result


#: Header blocks one batch remembers (:func:`parse_fields`): a bound on its memory.
_SEEN_BLOCKS = 256


def _parse_slowly(
    text: str, field: re.Pattern[str], part: int | None, *, mime: bool
) -> list[tuple[str, str]]:
    """Line by line: unfold MIME continuation lines, or say which line is wrong."""
    fields: list[tuple[str, str]] = []
    # The last field's value and its continuation lines, joined once it is complete: adding
    # each line to the value would copy it again for every line (quadratic in the lines).
    folded: list[str] = []
    what = "part" if mime else "HTTP"
    # Split at LF alone: str.splitlines would also split at a bare CR (and at \x0b, \x85...),
    # letting "X-A: a\rX-Injected: 1" pass as two fields.
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        if line[:1] in (" ", "\t"):
            if not mime:
                raise MalformedBatch(
                    f"obsolete line folding in the HTTP headers: {_show(line)}", part=part
                )
            if not fields:
                raise MalformedBatch("the part's headers begin with a continuation line", part=part)
            if not folded:
                folded.append(fields[-1][1])
            folded.append(line.strip(" \t\r\n"))
            continue
        _unfold(fields, folded)
        match = field.fullmatch(line + "\n")
        if match is None:
            raise MalformedBatch(f"invalid {what} header line {_show(line)}", part=part)
        fields.append((match.group(1), match.group(2) or ""))
    _unfold(fields, folded)
    return fields


def _unfold(fields: list[tuple[str, str]], folded: list[str]) -> None:
    """Give the last field its value joined with its continuation lines, if it had any."""
    if folded:
        fields[-1] = (fields[-1][0], " ".join(folded))
        folded.clear()


def _show(line: str) -> str:
    """A line as the client sent it (bytes repr), shortened, for an error message."""
    return repr(line.rstrip("\r\n")[:80].encode("latin-1"))


TOKEN_PATTERN = re.compile(_TOKEN_TEXT)


def encode_fields(fields: Headers) -> bytes:
    """``name: value`` CRLF for each field; ValueError names a field that could inject."""
    return b"".join([encode_field(name, value) + CRLF for name, value in fields])


def encode_field(name: str, value: str) -> bytes:
    """``name: value`` as bytes; refuses what could inject a header or a part."""
    if not _FIELD_NAME.fullmatch(name.encode("latin-1", "replace")):
        raise ValueError(f"invalid header name {name!r}")
    return name.encode("ascii") + b": " + encode_text(value, f"header {name}")


def encode_text(value: str, what: str) -> bytes:
    """``value`` as Latin-1 bytes, refused if it holds CR, LF or NUL (response splitting)."""
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(f"{what} has CR, LF or NUL in its value")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{what} has a character outside Latin-1") from None


def number(text: str) -> int | None:
    """A field's value as a number (``Content-Length``, a count): ASCII digits only (RFC
    9110's ``1*DIGIT``), at most :data:`MOST_DIGITS` of them after leading zeros; None when
    it is not one."""
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0")
    if len(significant) > MOST_DIGITS:
        return None
    return int(significant or "0")
