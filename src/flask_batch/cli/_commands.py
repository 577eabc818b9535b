"""The ``flask-batch`` command: ``send`` a ``.http`` file as one batch, ``describe`` an
endpoint. Built on Click; it sends with :class:`~flask_batch.client.Batching`, so what
goes over the wire is exactly what the requests client sends.

Exit status: 0 every request answered 2xx or 3xx; 1 some request failed (4xx, 5xx, or no
answer of its own); 2 a usage error or a bad ``.http`` file; 3 the batch as a whole failed
(could not connect, timed out, refused, not a batch answer).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import click
import requests

from .. import __version__
from ..client import BatchFailed, BatchNotSent
from ..client._core.limits import description
from ..client.requests import Batching
from ._http_file import BodyFile, HttpFile, HttpFileError, HttpRequest, Variables, parse

#: Exit statuses (docs/clients/cli.md).
OK, SOME_FAILED, BAD_INPUT, BATCH_FAILED = 0, 1, 2, 3
#: Seconds ``describe`` waits for the endpoint.
DESCRIBE_TIMEOUT = 30.0

_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


class BadInput(click.ClickException):
    """A ``.http`` file or an option that cannot be sent: exit status 2."""

    exit_code = BAD_INPUT


class Unreachable(click.ClickException):
    """The batch (or the description) as a whole failed: exit status 3."""

    exit_code = BATCH_FAILED


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="flask-batch")
def main() -> None:
    """Send many HTTP requests as one batch to a Flask-Batch endpoint (or any Google/OData
    batch endpoint), and describe what an endpoint supports.

    Exit status: 0 all requests succeeded, 1 some failed, 2 usage or file error,
    3 the batch itself failed.
    """


def batch_url(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """The endpoint's URL, checked: http or https, with a host."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise click.BadParameter(f"expected an http:// or https:// URL, not {value!r}")
    return value


def given_variables(
    context: click.Context, parameter: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping (the last one given for a name wins)."""
    found: dict[str, str] = {}
    for item in values:
        name, equals, value = item.partition("=")
        if not equals or not _VARIABLE_NAME.fullmatch(name):
            raise click.BadParameter(f"expected NAME=VALUE, not {item!r}")
        found[name] = value
    return found


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    required=True,
    metavar="URL",
    envvar="FLASK_BATCH_URL",
    callback=batch_url,
    help="The batch endpoint (or $FLASK_BATCH_URL). Relative request URLs resolve against it.",
)
@click.option(
    "--format",
    "batch_format",
    type=click.Choice(["multipart", "json"]),
    default="multipart",
    show_default=True,
    help="The batch format: multipart/mixed or JSON (OData 4.01, Microsoft Graph).",
)
@click.option(
    "--parallel",
    is_flag=True,
    help="Independent requests: the server may run them at once, and each runs whatever "
    "the others answer. Without it, each request depends on the one before: they run in "
    "file order, and after a failure the rest are answered 424, not run.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Seconds the whole exchange may take (connect, send, every answer).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    metavar="N",
    default=0,
    show_default=True,
    help="Re-sends of a request answered 429 or 503 (idempotent methods), or of a lost batch.",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    callback=given_variables,
    help="Set a variable, over the file's own (repeatable).",
)
@click.option("-i", "--headers", "show_headers", is_flag=True, help="Print each answer's headers.")
def send(  # noqa: PLR0917 (Click passes every option by keyword)
    file: Path,
    url: str,
    batch_format: Literal["multipart", "json"],
    parallel: bool,
    timeout: float | None,
    retries: int,
    variables: dict[str, str],
    show_headers: bool,
) -> None:
    """Send a .http file's requests as one batch; print each answer.

    FILE is written as the VS Code REST Client and the JetBrains HTTP Client write them; its
    requests go as one batch to the endpoint at --url, and each answer is printed (JSON
    indented), then a summary.
    """
    http_file = read_http_file(file)
    values = Variables(http_file, variables, os.environ)
    session = Batching(url, format=batch_format, timeout=timeout, retries=retries, split=False)
    with session:
        responses: list[requests.Response] = []
        for request in http_file.requests:
            responses.append(
                queue(session, request, values, file.parent, responses[-1:] if not parallel else [])
            )
        started = time.perf_counter()
        failure: requests.RequestException | None = None
        try:
            session.send_batch()
        except requests.RequestException as error:  # BatchFailed, or the network's own error
            failure = error
        elapsed = time.perf_counter() - started
    answered = [answer_of(response) for response in responses]
    if failure is not None and all(isinstance(answer, str) for answer in answered):
        raise Unreachable(f"the batch to {url} failed: {reason(failure)}")
    failed = 0
    for number, (request, answer) in enumerate(zip(http_file.requests, answered, strict=True), 1):
        click.echo(heading(number, request, responses[number - 1]))
        if isinstance(answer, str):
            failed += 1
            click.secho(f"no answer: {answer}", fg="red")
        else:
            failed += answer.status_code >= 400
            print_answer(answer, show_headers=show_headers)
        click.echo()
    total = len(responses)
    summary = f"{total} requests: {total - failed} ok, {failed} failed, in {elapsed:.3f} s"
    click.secho(summary, fg="red" if failed else "green", bold=True)
    if failed:
        raise click.exceptions.Exit(SOME_FAILED)


def read_http_file(path: Path) -> HttpFile:
    """The parsed file; its errors (and a file that is not UTF-8) are bad input."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return parse(text, str(path))
    except HttpFileError as error:
        raise BadInput(str(error)) from None


def queue(
    session: Batching,
    request: HttpRequest,
    values: Variables,
    directory: Path,
    depends_on: list[requests.Response],
) -> requests.Response:
    """Queue ``request`` in ``session``, its variables substituted, its body read."""
    source = values.file.source
    try:
        url = values.expand(request.url, request.line)
        headers: dict[str, str] = {}
        spelled: dict[str, str] = {}  # a header's name in lower case: as first written
        for name, value, line in request.headers:
            expanded = values.expand(value, line)
            first = spelled.setdefault(name.lower(), name)
            if first in headers:  # repeated: one field, its values joined (RFC 9110 5.3)
                joiner = "; " if first.lower() == "cookie" else ", "
                expanded = headers[first] + joiner + expanded
            headers[first] = expanded
        body = body_of(request, values, directory)
    except HttpFileError as error:
        raise BadInput(str(error)) from None
    try:
        return session.request(
            request.method,
            urljoin(session.batch_url, url),
            headers=headers,
            data=body,
            depends_on=depends_on,
        )
    except ValueError as error:
        raise BadInput(f"{source}:{request.line}: {error}") from None


def body_of(request: HttpRequest, values: Variables, directory: Path) -> bytes | None:
    """The bytes ``request`` sends: its body written in place, or read from a file (a path
    relative to the ``.http`` file's directory), its variables substituted."""
    body = request.body
    if body is None:
        return None
    if isinstance(body, str):
        return values.expand(body, request.body_line).encode("utf-8")
    return read_body_file(body, values, directory)


def read_body_file(body: BodyFile, values: Variables, directory: Path) -> bytes:
    where = f"{values.file.source}:{body.line}"
    try:
        content = (directory / body.path).read_bytes()
    except OSError as error:
        raise BadInput(
            f"{where}: cannot read the body file {body.path}: {error.strerror}"
        ) from None
    if not body.substitute:
        return content
    try:
        text = content.decode(body.encoding)
        return values.expand(text, body.line).encode(body.encoding)
    except LookupError:
        raise BadInput(f"{where}: unknown encoding {body.encoding!r}") from None
    except UnicodeError as error:
        raise BadInput(f"{where}: {body.path} is not {body.encoding} text: {error}") from None


def reason(error: BaseException) -> str:
    """What went wrong, in a few words: a network error's innermost cause (``Connection
    refused``) rather than urllib3's layers of wrapping; a :class:`BatchFailed` as it says."""
    if isinstance(error, BatchFailed):
        return str(error)
    inner: BaseException | None = error
    for _ in range(8):  # requests -> urllib3 -> the socket's OSError, a few levels at most
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        wrapped = inner.args[0] if inner is not None and inner.args else None
        inner = (
            getattr(inner, "reason", None)
            or getattr(inner, "__cause__", None)
            or (wrapped if isinstance(wrapped, BaseException) else None)
        )
        if inner is None:
            break
    return str(error)


def answer_of(response: requests.Response) -> requests.Response | str:
    """The response, or why it has none (its batch stopped before it, or failed)."""
    try:
        response.status_code  # noqa: B018 (reading it is what raises BatchNotSent)
    except BatchNotSent as error:
        return str(error)
    return response


def heading(number: int, request: HttpRequest, response: requests.Response) -> str:
    """``[2] POST http://host/path  (name)``: which request an answer is for."""
    named = f"  ({request.name})" if request.name else ""
    sent = response.request
    return click.style(f"[{number}] {sent.method} {sent.url}", bold=True) + named


def print_answer(response: requests.Response, *, show_headers: bool) -> None:
    color = "green" if response.status_code < 400 else "red"
    click.secho(f"HTTP {response.status_code} {response.reason or ''}".rstrip(), fg=color)
    if show_headers:
        for name, value in response.headers.items():
            click.echo(f"{name}: {value}")
    text = printable_body(response)
    if text:
        click.echo()
        click.echo(text)


def printable_body(response: requests.Response) -> str:
    """The body as text: JSON indented, text as it is, binary as its size."""
    content = response.content
    if not content:
        return ""
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.dumps(json.loads(content), indent=2, ensure_ascii=False)
        except ValueError:
            pass  # not JSON after all: shown as text
    try:
        return content.decode(response.encoding or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return f"[{len(content)} bytes of {media_type or 'binary data'}]"


@main.command()
@click.argument("url", callback=batch_url)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's own JSON document.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DESCRIBE_TIMEOUT,
    metavar="SECONDS",
    show_default=True,
    help="Seconds to wait for the endpoint.",
)
def describe(url: str, as_json: bool, timeout: float) -> None:
    """Print what the batch endpoint at URL supports, and its limits.

    What it answers to OPTIONS: its formats, limits, workers and conventions.
    """
    try:
        response = requests.options(
            url, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as error:
        raise Unreachable(f"could not reach {url}: {reason(error)}") from None
    document = description(response.status_code, response.content)
    if not isinstance(document, dict):
        raise Unreachable(
            f"{url} did not describe a batch endpoint: it answered {response.status_code} "
            f"{response.reason} ({response.headers.get('Content-Type', 'no Content-Type')})"
        )
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.secho(f"Batch endpoint {url}", bold=True)
    allowed = response.headers.get("Allow")
    rows = {"methods": allowed, **document} if allowed else document
    width = max(len(name) for name in rows) + 2
    for name, value in rows.items():
        click.echo(f"  {name.replace('_', ' '):<{width}}{readable(name, value)}")


def readable(name: str, value: Any) -> str:
    """One value of an endpoint's description, as a person reads it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, int) and name.endswith("_size") and value >= 1024:
        return f"{size(value)} ({value} bytes)"
    if name == "deadline" and isinstance(value, int | float):
        return f"{value} s"
    return str(value)


def size(count: int) -> str:
    """``count`` bytes in the largest binary unit it reaches (``16 MiB``)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.4g} {unit}"
    return f"{count} bytes"
