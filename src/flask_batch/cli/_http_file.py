"""The ``.http`` file format of the VS Code REST Client and the JetBrains HTTP Client: text
in, requests out, no I/O (the command line reads the files and the environment).

Two steps, so that every error names its line: :func:`parse` finds the requests and the file
variables as written (``{{name}}`` left in place), :meth:`Variables.expand` substitutes them.
What the two tools share and define well is read; what only an editor can do (response
handlers, prompts, request variables taken from an earlier answer) is refused by name,
never guessed. The work is linear in the text: one pass over its lines, one regular
expression without nested repetition, each file variable expanded once, and every expanded
text bounded by :data:`MAX_EXPANSION`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from random import randint

#: The most characters one text (a URL, a header value, a body, a variable) may expand to:
#: the server's default ``max_body_size``. Nested variables that double at every level
#: would otherwise expand a few hundred bytes into gigabytes.
MAX_EXPANSION = 16 * 1024 * 1024
#: How deep variables may refer to variables that refer to variables.
MAX_NESTING = 64
#: The methods a request line may start with (any case; sent in upper case).
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
#: Request kinds of the JetBrains HTTP Client that are not HTTP requests a batch can carry.
NOT_BATCHABLE = frozenset({"GRAPHQL", "WEBSOCKET", "GRPC"})

_VARIABLE = re.compile(r"\{\{([^{}\n]*)\}\}")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/\d(?:\.\d)?")
_BODY_FILE = re.compile(r"<(@[A-Za-z0-9_\-]*)?[ \t]+(\S.*)")
_HANDLER = re.compile(r">>!?[ \t]|>[ \t]*(?:\{%|\S+\.js\s*$)")


class HttpFileError(ValueError):
    """What is wrong with a ``.http`` file, and where: ``source:line: message``."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class BodyFile:
    """A body read from a file (``< path``); with ``<@`` (``<@encoding``), the file is text
    whose variables are substituted (``encoding``: its codec, UTF-8 unless named)."""

    path: str
    substitute: bool
    encoding: str
    line: int


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as written, variables not yet substituted; ``*_line``: where each piece
    starts, for errors."""

    line: int
    name: str | None
    method: str
    url: str
    headers: tuple[tuple[str, str, int], ...]
    body: str | BodyFile | None
    body_line: int


@dataclass(frozen=True, slots=True)
class HttpFile:
    """A parsed file: its requests, and its file variables (``@name = value``) with the line
    each is defined on."""

    source: str
    requests: tuple[HttpRequest, ...]
    variables: Mapping[str, tuple[str, int]]


def parse(text: str, source: str = "<string>") -> HttpFile:
    """The requests and file variables of ``text`` (the contents of ``source``).

    Requests are separated by lines starting with ``###`` (the rest of the line names the
    request, as ``# @name x`` does). Before a request line: blank lines, comments (``#``,
    ``//``) and file variables. The request line is ``METHOD URL [HTTP/1.1]`` or a bare URL
    (GET), continued on the lines after it that are indented or start with ``?`` or ``&``;
    then header lines, a blank line, and the body up to the next ``###`` (trailing blank
    lines dropped; lines joined by CRLF in a ``multipart/*`` body, else LF). A body that is
    one line ``< path`` (or ``<@ path``) is read from that file.
    """
    variables: dict[str, tuple[str, int]] = {}
    requests: list[HttpRequest] = []
    for section in _sections(text):
        request = _Section(source, section, variables).read()
        if request is not None:
            requests.append(request)
    if not requests:
        raise HttpFileError(source, 1, "no request in the file (requests are separated by ###)")
    return HttpFile(source, tuple(requests), variables)


def _sections(text: str) -> Iterator[list[tuple[int, str]]]:
    """The numbered lines of ``text``, cut at each ``###`` line (which starts its section)."""
    section: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if line.startswith("###") and section:
            yield section
            section = []
        section.append((number, line))
    yield section


class _Section:
    """The lines from one ``###`` to the next, read into at most one request."""

    def __init__(
        self, source: str, lines: list[tuple[int, str]], variables: dict[str, tuple[str, int]]
    ) -> None:
        self.source = source
        self.lines = lines
        self.variables = variables
        self.at = 0
        self.name: str | None = None

    def error(self, line: int, message: str) -> HttpFileError:
        return HttpFileError(self.source, line, message)

    def read(self) -> HttpRequest | None:
        first = self.lines[0][1]
        if first.startswith("###"):
            self.name = first[3:].strip() or None
            self.at = 1
        request_line = self._preamble()
        if request_line is None:
            return None
        number, line = request_line
        method, url = self._request_line(number, line)
        headers = self._headers()
        body, body_line = self._body(headers)
        return HttpRequest(number, self.name, method, url, headers, body, body_line)

    def _next(self) -> tuple[int, str] | None:
        """The next line's number and text, stripped (None at the section's end)."""
        if self.at == len(self.lines):
            return None
        number, line = self.lines[self.at]
        self.at += 1
        return number, line.strip()

    def _preamble(self) -> tuple[int, str] | None:
        """Comments, names and file variables up to the request line (None: there is none)."""
        while (next_line := self._next()) is not None:
            number, stripped = next_line
            if not stripped:
                continue
            comment = _comment(stripped)
            if comment is not None:
                self._metadata(number, comment)
            elif stripped.startswith("@"):
                self._variable(number, stripped)
            else:
                return number, stripped
        return None

    def _metadata(self, number: int, comment: str) -> None:
        """``# @name x`` (or ``@name = x``) names the request; ``# @prompt`` needs an editor."""
        if not comment.startswith("@"):
            return
        key, _, value = comment[1:].partition(" ")
        if key.startswith("name="):
            key, value = "name", key[5:] + value
        if key == "name":
            self.name = value.strip().removeprefix("=").strip() or self.name
        elif key == "prompt":
            raise self.error(
                number, "@prompt asks for a value in an editor; pass it with --var NAME=VALUE"
            )

    def _variable(self, number: int, line: str) -> None:
        name, equals, value = line[1:].partition("=")
        name = name.strip()
        if not equals or not _NAME.fullmatch(name):
            raise self.error(
                number,
                "expected a file variable, @name = value (name: letters, digits, _-.); "
                f"got {line[:80]!r}",
            )
        if name in self.variables:
            raise self.error(
                number,
                f"variable {name!r} is defined twice (first on line {self.variables[name][1]})",
            )
        self.variables[name] = (value.strip(), number)

    def _request_line(self, number: int, line: str) -> tuple[str, str]:
        first, *rest = line.split(None, 1)
        method = first.upper()
        if method in NOT_BATCHABLE:
            raise self.error(number, f"{first} requests cannot be sent in a batch")
        url = line
        if method in METHODS:
            url = rest[0].strip() if rest else ""
        else:
            method = "GET"  # a bare URL
        *before, last = url.rsplit(None, 1) or [""]
        if before and _VERSION.fullmatch(last):
            url = before[0].strip()
        if not url or any(blank in _VARIABLE.sub("", url) for blank in " \t"):
            raise self.error(
                number,
                "expected METHOD URL [HTTP/1.1] or a bare URL, as in 'GET http://host/path'; "
                f"got {line[:80]!r}",
            )
        pieces = [url]
        while self.at < len(self.lines):
            continued = self.lines[self.at][1]
            if not continued.strip() or continued[0] not in " \t?&":
                break
            pieces.append(continued.strip())
            self.at += 1
        return method, "".join(pieces)

    def _headers(self) -> tuple[tuple[str, str, int], ...]:
        headers: list[tuple[str, str, int]] = []
        while (next_line := self._next()) is not None:
            number, stripped = next_line
            if not stripped:
                break
            if _comment(stripped) is not None:
                continue
            self._refuse_handler(number, stripped)
            name, colon, value = stripped.partition(":")
            name = name.strip()
            if not colon or not _TOKEN.fullmatch(name):
                raise self.error(
                    number,
                    "expected a header (Name: value), or a blank line before the body; "
                    f"got {stripped[:80]!r}",
                )
            headers.append((name, value.strip(), number))
        return tuple(headers)

    def _body(self, headers: tuple[tuple[str, str, int], ...]) -> tuple[str | BodyFile | None, int]:
        lines = self.lines[self.at :]
        while lines and not lines[-1][1].strip():
            lines.pop()
        if not lines:
            return None, 0
        for number, line in lines:
            self._refuse_handler(number, line)
        first_number, first = lines[0]
        match = _BODY_FILE.fullmatch(first.strip())
        if match is not None:
            if len(lines) > 1:
                raise self.error(
                    lines[1][0], "a body read from a file (< path) must be the body's only line"
                )
            encoding = match.group(1)
            return (
                BodyFile(
                    match.group(2).strip(),
                    substitute=encoding is not None,
                    encoding=(encoding or "@")[1:] or "utf-8",
                    line=first_number,
                ),
                first_number,
            )
        multipart = any(
            name.lower() == "content-type" and value.lower().startswith("multipart/")
            for name, value, _ in headers
        )
        return ("\r\n" if multipart else "\n").join(line for _, line in lines), first_number

    def _refuse_handler(self, number: int, line: str) -> None:
        if _HANDLER.match(line):
            raise self.error(
                number,
                "response handlers and output redirection (> {% ... %}, >> file) run in an "
                "editor; flask-batch prints every answer instead",
            )


def _comment(stripped: str) -> str | None:
    """The text of a comment line (``# ...`` or ``// ...``), or None if it is not one."""
    if stripped.startswith("#"):
        return stripped[1:].strip()
    if stripped.startswith("//"):
        return stripped[2:].strip()
    return None


class Variables:
    """What ``{{name}}`` means in one file: ``given`` (``--var``, which wins), the file's
    variables, and the system variables: ``{{$processEnv NAME}}`` (from ``environ``),
    ``{{$guid}}`` (also ``$uuid``, ``$random.uuid``), ``{{$timestamp}}``,
    ``{{$randomInt [min max]}}``.

    A file variable is expanded once, when first used (it may use others, but not itself).
    """

    def __init__(
        self,
        file: HttpFile,
        given: Mapping[str, str],
        environ: Mapping[str, str],
    ) -> None:
        self.file = file
        self.environ = environ
        self._values: dict[str, str] = dict(given)
        self._expanding: list[str] = []

    def expand(self, text: str, line: int) -> str:
        """``text`` (which starts on ``line``) with its variables substituted."""
        if "{{" not in text:
            return text
        pieces: list[str] = []
        size = 0
        end = 0
        at = line
        for match in _VARIABLE.finditer(text):
            at += text.count("\n", end, match.start())
            value = self._value(match.group(1).strip(), at)
            pieces += (text[end : match.start()], value)
            size += match.start() - end + len(value)
            if size > MAX_EXPANSION:
                raise self._error(
                    at,
                    f"expands to more than {MAX_EXPANSION} characters "
                    "(variables within variables?)",
                )
            end = match.end()
        pieces.append(text[end:])
        return "".join(pieces)

    def _error(self, line: int, message: str) -> HttpFileError:
        return HttpFileError(self.file.source, line, message)

    def _value(self, name: str, line: int) -> str:
        if name.startswith("$"):
            return self._system(name, line)
        if name in self._values:
            return self._values[name]
        if name not in self.file.variables:
            defined = sorted({*self._values, *self.file.variables})
            known = ", ".join(defined[:10]) + (", ..." if len(defined) > 10 else "") or "none"
            name = _shown(name)
            raise self._error(
                line,
                f"unknown variable {{{{{name}}}}} (defined: {known}; or pass --var {name}=...)",
            )
        if len(self._expanding) >= MAX_NESTING:
            raise self._error(line, f"variables nest deeper than {MAX_NESTING} levels")
        if name in self._expanding:
            cycle = " -> ".join([*self._expanding[self._expanding.index(name) :], name])
            raise self._error(line, f"variable {name!r} refers to itself: {cycle}")
        raw, defined_on = self.file.variables[name]
        self._expanding.append(name)
        try:
            value = self.expand(raw, defined_on)
        finally:
            self._expanding.pop()
        self._values[name] = value
        return value

    def _system(self, expression: str, line: int) -> str:
        name, *arguments = expression.split()
        expression = _shown(expression)
        if name == "$processEnv" and len(arguments) == 1 and not arguments[0].startswith("%"):
            if arguments[0] not in self.environ:
                raise self._error(line, f"environment variable {arguments[0]} is not set")
            return self.environ[arguments[0]]
        if name in {"$guid", "$uuid", "$random.uuid"} and not arguments:
            return str(uuid.uuid4())
        if name == "$timestamp" and not arguments:
            return str(int(time.time()))
        if name == "$randomInt" and len(arguments) in {0, 2}:
            low, high = arguments or ["0", "1000"]
            if not (_integer(low) and _integer(high) and int(low) < int(high)):
                raise self._error(
                    line, f"{{{{{expression}}}}}: expected $randomInt MIN MAX, MIN < MAX"
                )
            return str(randint(int(low), int(high) - 1))
        raise self._error(
            line,
            f"{{{{{expression}}}}} is not supported: flask-batch knows $processEnv NAME, $guid, "
            "$uuid, $random.uuid, $timestamp and $randomInt [MIN MAX]",
        )


def _shown(text: str) -> str:
    """``text`` as an error quotes it: its first 80 characters."""
    return text if len(text) <= 80 else text[:80] + "..."


def _integer(text: str) -> bool:
    return text.removeprefix("-").isdigit() and len(text) < 20
