"""``Batching`` sends what ``requests`` itself would send, and fills each response as
``requests`` would have built it (issue 14).

Why: ``Batching`` prepares the common calls without ``Session.prepare_request`` (the session's
settings merged once, ``client/_requests_prepare.py``), and nothing in that fast path may
change what is sent. The oracle is ``requests``' own ``Session.request`` run on the very same
session at the moment of the call, with its ``send`` replaced by a recorder: what it would
hand its transport. Each call's part, as the batch endpoint reads it back out of the encoded
batch, must be that request (method, target, header fields in order, body), and the
response's ``request`` must be what requests prepared; a call requests refuses is refused
with the same error. Sessions change between calls (headers, auth, cookies, params, hooks),
and the calls cover per-call headers (``None`` removes one), auth pairs and objects, cookies
and jars, params, JSON, form data, text, bytes, generators, files and hooks. Each answer is
compared with the response requests' own ``HTTPAdapter.build_response`` makes of it, read as
``Session.send`` reads it.
"""

from __future__ import annotations

import gzip
import http.client
import io
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPDigestAuth
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from urllib3 import HTTPHeaderDict, HTTPResponse

from flask_batch.client import Batching, BatchNotSent
from flask_batch.client._core.queueing import NOT_CARRIED
from flask_batch.client._requests_messages import (
    Queued,
    RequestsBatchResponse,
    TransportArguments,
    fill,
    part_of,
)
from flask_batch.wire.model import SubRequest, SubResponse
from tests.fake_batch import BASE, BATCH_URL, FakeEndpoint, RequestsAdapter

from .properties import PROPERTY

# -- the oracle --------------------------------------------------------------------------


class _Recorded(Exception):
    """Raised by the recording ``send``: requests prepared the request and handed it over."""

    def __init__(self, request: requests.PreparedRequest) -> None:
        super().__init__()
        self.request = request


def what_requests_sends(session: requests.Session, call: Call) -> requests.PreparedRequest:
    """What ``requests.Session.request`` hands its transport for ``call`` on ``session`` now."""

    def record(request: requests.PreparedRequest, **_: Any) -> requests.Response:
        raise _Recorded(request)

    session.send = record  # type: ignore[method-assign]
    try:
        requests.Session.request(session, call.method, call.url, **call.arguments())
    except _Recorded as recorded:
        return recorded.request
    finally:
        del session.send
    raise AssertionError("requests did not send the request")


def body_bytes(body: Any) -> bytes:
    """A prepared body as the bytes that go on the wire."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    if hasattr(body, "read"):
        return bytes(body.read())
    return b"".join(chunk.encode() if isinstance(chunk, str) else chunk for chunk in body)


_BOUNDARY = re.compile(r"boundary=([0-9a-f]+)")


def expected_part(request: requests.PreparedRequest, sent: SubRequest) -> SubRequest:
    """The part that carries ``request``: its header fields but those of the batch's
    connection, the body's Content-Length, and (files) the form boundary ``sent`` chose."""
    body = body_bytes(request.body)
    fields = [
        (name, value.decode("latin-1") if isinstance(value, bytes) else value)
        for name, value in request.headers.items()
        if name.lower() not in NOT_CARRIED
    ]
    if body:
        fields.append(("Content-Length", str(len(body))))
    ours = _BOUNDARY.search(dict(sent.headers).get("Content-Type", ""))
    theirs = _BOUNDARY.search(str(request.headers.get("Content-Type", "")))
    if ours and theirs:  # multipart/form-data: each prepared request draws its own boundary
        swap = theirs.group(1), ours.group(1)
        fields = [(name, value.replace(*swap)) for name, value in fields]
        body = body.replace(swap[0].encode(), swap[1].encode())
    return SubRequest(request.method or "", request.path_url, tuple(fields), body)


# -- calls and session changes ---------------------------------------------------------


def _first_hook(response: requests.Response, **_: Any) -> None:
    response.first_hook = True  # type: ignore[attr-defined]


def _second_hook(response: requests.Response, **_: Any) -> None:
    response.second_hook = True  # type: ignore[attr-defined]


class TokenAuth(AuthBase):
    """An auth object: it may change anything in the prepared request."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Token"] = f"token for {request.method} {request.path_url}"
        return request


TOKEN_AUTH = TokenAuth()
DIGEST_AUTH = HTTPDigestAuth("ada", "secret")  # registers response hooks


def _chunks() -> Iterator[bytes]:
    yield b"first,"
    yield b""
    yield b"second"


@dataclass
class Call:
    """A call as ``session.request`` takes it; bodies that are consumed are made afresh."""

    method: str
    url: str
    given: dict[str, Any] = field(default_factory=dict)
    #: Makes the ``data`` argument (a generator or a file), for each preparation anew.
    make_data: Callable[[], Any] | None = None

    def arguments(self) -> dict[str, Any]:
        arguments = dict(self.given)
        if self.make_data is not None:
            arguments["data"] = self.make_data()
        return arguments


Change = Callable[[requests.Session], None]


def _set_header(name: str, value: str | None) -> Change:
    def change(session: requests.Session) -> None:
        session.headers[name] = value  # type: ignore[assignment]

    return change


def _remove_header(name: str) -> Change:
    def change(session: requests.Session) -> None:
        session.headers.pop(name, None)

    return change


def _plain_headers(session: requests.Session) -> None:
    session.headers = {"Accept": "application/json", "X-Plain": "dict"}


def _set(attribute: str, value: Any) -> Change:
    def change(session: requests.Session) -> None:
        setattr(session, attribute, value)

    return change


def _add_cookie(name: str, value: str, **where: Any) -> Change:
    def change(session: requests.Session) -> None:
        session.cookies.set(name, value, **where)

    return change


def _add_hook(session: requests.Session) -> None:
    session.hooks["response"].append(_second_hook)


# -- strategies ------------------------------------------------------------------------

NAMES = [
    "Accept",
    "accept",
    "ACCEPT-ENCODING",
    "User-Agent",
    "X-Token",
    "x-token",
    "Content-Type",
    "If-Match",
    "Authorization",
    "Cookie",
    "Content-Length",
    "Connection",
    "Host",
]
_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=8)
#: Header values: text, latin-1 bytes, None (removes it), now and then one requests refuses.
_VALID = _TEXT.filter(lambda text: not text[:1].isspace())
SESSION_VALUES = st.one_of(st.none(), _VALID, _VALID.map(lambda text: text.encode("latin-1")))
VALUES = st.one_of(SESSION_VALUES, st.sampled_from([" leading", "line\nbreak", 7]))
HEADERS = st.one_of(st.none(), st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4))
#: Pieces of a URL requests leaves as they are, and pieces it changes or refuses.
KEPT_PIECES = ["items", "a", "7", "-._~", "!$&'()*+,;=:@", "/", "//", "?", "?q=1", "&x=y"]
KEPT_PIECES += ["%20", "%2F", "%7C", "%C3%BC", ".", "a.b"]
CHANGED_PIECES = ["%2f", "%41", "%7E", "%zz", "%", "#frag", " ", "ü", "[]", "\\", "|", '"']
CHANGED_PIECES += ["/./", "/../", "/.", "/.."]
PATHS = st.one_of(
    st.lists(st.sampled_from(KEPT_PIECES)),
    st.lists(st.sampled_from(KEPT_PIECES + CHANGED_PIECES)),
).map("".join)
PREFIXES = st.sampled_from(
    [BASE + "/", BASE + "/", BASE + "/", "HTTP://API.test/", "http://api.test:80/"]
)
URLS = st.builds(str.__add__, PREFIXES, PATHS)
_KEYS = st.sampled_from(["a", "b", "é", "q"])
_PARAM_VALUES = st.one_of(
    st.none(), _TEXT, st.integers(-5, 5), st.lists(_TEXT, max_size=2), st.binary(max_size=3)
)
PARAMS = st.one_of(
    st.none(),
    st.dictionaries(_KEYS, _PARAM_VALUES, max_size=3),
    st.lists(st.tuples(_KEYS, _TEXT), max_size=3),
    st.sampled_from(["x=1&y=2", b"z=%41", "bad=%zz", ""]),
)
JSON = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), _TEXT
    ),  # floats: NaN is refused
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=6,
)
DATA = st.one_of(
    st.none(),
    st.dictionaries(_KEYS, _PARAM_VALUES, max_size=3),
    st.lists(st.tuples(_KEYS, _TEXT), max_size=2),
    _TEXT,
    st.binary(max_size=8),
)
COOKIES = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["sid", "theme"]), st.sampled_from(["1", "dark"]), max_size=2),
    st.just("jar"),
)
AUTH = st.one_of(
    st.none(),
    st.tuples(_TEXT, _TEXT),
    st.sampled_from([TOKEN_AUTH, DIGEST_AUTH, ("ada", "pw"), ("ada", "pw"), b"bad"]),
)
HOOKS = st.one_of(
    st.none(),
    st.sampled_from([{"response": _first_hook}, {"response": [_first_hook, _second_hook]}, {}]),
)
METHODS = st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "get"])


#: The arguments of a common call: what most programs pass.
COMMON = {
    "params": PARAMS,
    "headers": st.one_of(st.none(), st.dictionaries(st.sampled_from(NAMES), SESSION_VALUES)),
    "auth": st.one_of(st.none(), st.tuples(_TEXT, _TEXT)),
    "json": JSON,
    "data": DATA,
}


@st.composite
def calls(draw: st.DrawFn) -> Call:
    """Half of them common calls, half anything ``session.request`` takes."""
    if draw(st.booleans()):
        given_ = {
            name: value
            for name, strategy in COMMON.items()
            if (value := draw(st.one_of(st.none(), strategy))) is not None
        }
        given_.update(_cookies(draw(COOKIES)))
        url = draw(PREFIXES) + "".join(draw(st.lists(st.sampled_from(KEPT_PIECES))))
        return Call(draw(METHODS), url, given_)
    given_ = {}
    for name, strategy in (
        ("params", PARAMS),
        ("headers", HEADERS),
        ("auth", AUTH),
        ("hooks", HOOKS),
        ("json", JSON if draw(st.booleans()) else st.none()),
        ("data", DATA),
    ):
        value = draw(strategy)
        if value is not None:
            given_[name] = value
    given_.update(_cookies(draw(COOKIES)))
    make_data = None
    body_kind = draw(st.sampled_from(["given", "given", "stream", "file", "files"]))
    if body_kind == "stream":
        make_data = _chunks
    elif body_kind == "file":
        make_data = lambda: io.BytesIO(b"file body")  # noqa: E731
    elif body_kind == "files":
        given_["files"] = {"upload": ("notes.txt", b"some notes", "text/plain")}
    return Call(draw(METHODS), draw(URLS), given_, make_data)


def _cookies(drawn: object) -> dict[str, Any]:
    """The ``cookies`` argument ``COOKIES`` drew (``"jar"``: a cookie jar)."""
    if drawn == "jar":
        jar = RequestsCookieJar()
        jar.set("sid", "from-a-jar", domain="api.test", path="/")
        return {"cookies": jar}
    return {} if drawn is None else {"cookies": drawn}


CHANGES: st.SearchStrategy[Change] = st.one_of(
    # (a header requests refuses in the session would make the batch request fail)
    st.builds(_set_header, st.sampled_from(NAMES), SESSION_VALUES),
    st.builds(_remove_header, st.sampled_from(NAMES)),
    st.just(_plain_headers),
    st.builds(_set, st.just("auth"), st.sampled_from([None, ("s", "pw"), TOKEN_AUTH])),
    st.builds(_set, st.just("params"), st.sampled_from([{}, {"s": "1", "t": None}, None])),
    st.builds(_set, st.just("trust_env"), st.booleans()),
    st.just(_add_cookie("sid", "session")),
    st.just(_add_cookie("path", "only", domain="api.test", path="/items")),
    st.just(_add_cookie("secure", "only", secure=True)),
    st.just(_add_cookie("elsewhere", "no", domain="other.test")),
    st.just(_add_hook),
)
#: Calls, each after zero to two changes to the session.
STEPS = st.lists(st.tuples(st.lists(CHANGES, max_size=2), calls()), min_size=1, max_size=5).map(
    lambda steps: [step for changes, call in steps for step in [*changes, call]]
)


# -- the checks --------------------------------------------------------------------------


def queue_and_compare(steps: list[Call | Change], slow: list[str] | None = None) -> None:
    """Queue each call (making each change to the session on the way) and check that its
    part, as the endpoint read it out of the batch, is what requests would have sent;
    ``slow``: where to note the calls that needed ``Session.prepare_request``."""
    endpoint = FakeEndpoint()
    expected: list[requests.PreparedRequest] = []
    queued: list[requests.Response] = []
    prepared: list[requests.Request] = []
    with Batching(BATCH_URL) as session:
        session.mount(BASE, RequestsAdapter(endpoint))

        def counted(request: requests.Request) -> requests.PreparedRequest:
            prepared.append(request)
            return requests.Session.prepare_request(session, request)

        session.prepare_request = counted  # type: ignore[method-assign]
        for step in steps:
            if not isinstance(step, Call):
                step(session)
                continue
            try:
                oracle = what_requests_sends(session, step)
            except Exception as error:
                with pytest.raises(type(error), match=f"^{re.escape(str(error))}$"):
                    session.request(step.method, step.url, **step.arguments())
                continue
            before = len(prepared)
            response = session.request(step.method, step.url, **step.arguments())
            if slow is not None and len(prepared) > before:
                slow.append(f"{step.method} {step.url}")
            expected.append(oracle)
            queued.append(response)
            assert_same_request(response.request, oracle)
    parts = [part for batch in endpoint.parts for part in batch]
    assert len(parts) == len(expected)
    for part, oracle, response in zip(parts, expected, queued, strict=True):
        assert part[:4] == expected_part(oracle, part)[:4]
        for hook in oracle.hooks["response"]:  # the response hooks ran on the filled response
            name = getattr(hook, "__name__", "")
            if name in {"_first_hook", "_second_hook"}:
                assert getattr(response, name.strip("_"), False)


def assert_same_request(ours: requests.PreparedRequest, theirs: requests.PreparedRequest) -> None:
    """The response's ``request`` is what requests prepared."""
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    mine = [(k, v) for k, v in ours.headers.items() if "boundary=" not in str(v)]
    assert mine == [(k, v) for k, v in theirs.headers.items() if "boundary=" not in str(v)]
    assert ours.hooks == theirs.hooks
    assert type(ours._cookies) is type(theirs._cookies)  # type: ignore[attr-defined]
    if isinstance(theirs.body, (str, bytes)) and "boundary=" not in str(
        theirs.headers.get("Content-Type")
    ):
        assert ours.body == theirs.body
        assert type(ours.body) is type(theirs.body)


@PROPERTY
@given(STEPS)
def test_each_part_is_what_requests_would_send(steps: list[Call | Change]) -> None:
    queue_and_compare(steps)


COMMON_CALLS = [
    Call("GET", f"{BASE}/items/7"),
    Call("PATCH", f"{BASE}/items/7", {"json": {"count": 1, "note": "é"}}),
    Call("POST", f"{BASE}/items", {"data": {"a": ["1", "2"], "b": None}}),
    Call("PUT", f"{BASE}/blobs/x", {"data": b"\x00\xff"}),
    Call("POST", f"{BASE}/notes", {"data": "text body"}),
    Call("DELETE", f"{BASE}/items/7", {"headers": {"If-Match": '"v1"', "Accept": None}}),
    Call("GET", f"{BASE}/search?q=a%20b", {"params": {"page": 2, "tag": ["x", "y"]}}),
    Call("GET", f"{BASE}/me", {"auth": ("ada", "secret"), "cookies": {"theme": "dark"}}),
    Call("HEAD", f"{BASE}/items?", {"headers": {"X-Token": b"\xe9t\xe9"}}),
]


def test_common_calls_go_as_requests_would_send_them_without_prepare_request() -> None:
    """The common shapes of call are prepared without ``Session.prepare_request``, and still
    exactly as requests prepares them, while the session changes between them."""
    changes: list[Change] = [
        _set_header("X-Client", "ours"),
        _set("params", {"v": "2"}),
        _add_cookie("sid", "abc", domain="api.test", path="/"),
        _add_hook,
    ]
    steps: list[Call | Change] = []
    for call in COMMON_CALLS:
        steps += [call, changes.pop()] if changes else [call]
    slow: list[str] = []
    queue_and_compare(steps, slow)
    assert slow == []


def test_a_session_changed_between_calls_is_seen() -> None:
    """Headers, auth, params, cookies and hooks set after the first call apply to the next."""
    endpoint = FakeEndpoint()
    with Batching(BATCH_URL) as session:
        session.mount(BASE, RequestsAdapter(endpoint))
        session.get(f"{BASE}/one")
        session.headers["X-Added"] = "later"
        session.headers["accept"] = "text/plain"  # the name's case changes too
        session.auth = ("ada", "pw")
        session.params = {"v": "2"}
        session.cookies.set("sid", "abc")
        session.hooks["response"].append(_first_hook)
        second = session.get(f"{BASE}/two")
        del session.headers["X-Added"]
        session.auth = None
        third = session.get(f"{BASE}/three")
    one, two, three = (dict(part.headers) for part in endpoint.parts[0])
    assert "X-Added" not in one
    assert "Authorization" not in one
    assert "Cookie" not in one
    assert two["X-Added"] == "later"
    assert two["accept"] == "text/plain"
    assert two["Authorization"] == "Basic YWRhOnB3"
    assert two["Cookie"] == "sid=abc"
    assert endpoint.parts[0][1].target == "/two?v=2"
    assert "X-Added" not in three
    assert "Authorization" not in three
    assert getattr(second, "first_hook", False)
    assert getattr(third, "first_hook", False)


def test_netrc_credentials_apply_as_requests_applies_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``trust_env``, a call without auth gets the netrc file's credentials for the
    batch origin; a call's own auth wins; without ``trust_env`` there are none."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.test login ada password from-netrc\n")
    monkeypatch.setenv("NETRC", str(netrc))
    queue_and_compare(
        [
            Call("GET", f"{BASE}/a"),
            Call("GET", f"{BASE}/b", {"auth": ("bob", "own")}),
            _set("trust_env", False),
            Call("GET", f"{BASE}/c"),
        ]
    )
    endpoint = FakeEndpoint()
    with Batching(BATCH_URL) as session:
        session.mount(BASE, RequestsAdapter(endpoint))
        session.get(f"{BASE}/a")
    assert dict(endpoint.parts[0][0].headers)["Authorization"].startswith("Basic ")


#: URLs requests changes (dot segments, escapes, characters it quotes) or refuses, and
#: URLs it leaves as they are.
URL_CASES = [
    "/a/./b",
    "/a/../b",
    "/a/.",
    "/..",
    "/.hidden",
    "/a.b/c",
    "/%2f",
    "/%2F",
    "/%41%7e%7E",
    "/%zz",
    "/100%",
    "/a#fragment",
    "/ü?ä=ö",
    "/a b",
    "/[x]",
    "/a|b",
    "/?",
    "/?&",
    "/x?q=%20&r=%2f",
    "//double//slashes/",
    "/!$&'()*+,;=:@-._~",
]


@pytest.mark.parametrize("path", URL_CASES)
@pytest.mark.parametrize("params", [None, {"p": "1 2"}, "raw=%zz"])
def test_a_url_is_sent_as_requests_sends_it(path: str, params: object) -> None:
    given_ = {} if params is None else {"params": params}
    queue_and_compare([Call("GET", BASE + path, given_), Call("GET", BASE.upper() + path)])


@PROPERTY
@given(st.lists(st.tuples(PATHS, st.one_of(st.none(), PARAMS)), min_size=1, max_size=4))
def test_any_url_is_sent_as_requests_sends_it(calls: list[tuple[str, object]]) -> None:
    queue_and_compare(
        [
            Call("GET", f"{BASE}/{path}", {} if params is None else {"params": params})
            for path, params in calls
        ]
    )


# -- answers -----------------------------------------------------------------------------


def what_requests_builds(
    request: requests.PreparedRequest, answer: SubResponse, *, stream: bool
) -> tuple[requests.Response, object]:
    """The response requests' ``HTTPAdapter`` builds of ``answer`` to ``request``, and what
    ``Session.send`` gets reading its content at once (what it raises, if it does: then
    plain requests raises it), or None if ``stream``."""
    headers = HTTPHeaderDict()
    message = http.client.HTTPMessage()
    for name, value in answer.headers:
        headers.add(name, value)
        message[name] = value
    raw = HTTPResponse(
        body=io.BytesIO(answer.body),
        headers=headers,
        status=answer.status,
        reason=answer.reason,
        preload_content=False,
        decode_content=False,
        request_method=request.method,
        request_url=request.url,
    )
    response = HTTPAdapter().build_response(request, raw)
    # build_response takes the cookies from the http.client response urllib3 wraps: none here
    wrapped = SimpleNamespace(_original_response=SimpleNamespace(msg=message))
    extract_cookies_to_jar(response.cookies, request, wrapped)  # type: ignore[no-untyped-call]
    return response, None if stream else outcome(lambda: response.content)


def outcome(read: Callable[[], object]) -> object:
    """What ``read()`` gives, or the type and message of what it raises."""
    try:
        return read()
    except Exception as error:
        return type(error), str(error)


def cookies_in(jar: CookieJar) -> list[tuple[str, str | None, str, str]]:
    return sorted((cookie.name, cookie.value, cookie.domain, cookie.path) for cookie in jar)


def answer_fields(response: requests.Response, content: object = None) -> dict[str, object]:
    """What a response says, for comparison (``content``: what reading it gave already)."""
    return {
        "status": response.status_code,
        "reason": response.reason,
        "headers": list(response.headers.items()),
        "encoding": response.encoding,
        "url": response.url,
        "cookies": cookies_in(response.cookies),
        "content": outcome(lambda: response.content) if content is None else content,
        "text": outcome(lambda: response.text),
        "raw": (response.raw.status, list(response.raw.headers.items())),
    }


_GZIPPED = gzip.compress(b'{"zipped": true}')
ANSWER_FIELDS = st.one_of(
    st.tuples(
        st.sampled_from(["Content-Length", "content-length"]),
        st.sampled_from(["0", "3", "16", "36", "3, 3", " 3", "-1", "x", "+3", "٣"]),
    ),
    st.tuples(
        st.sampled_from(["Content-Type", "content-type"]),
        st.sampled_from(
            ["application/json", "text/html; charset=latin-1", "text/plain", "image/png", ""]
        ),
    ),
    st.tuples(st.just("Transfer-Encoding"), st.sampled_from(["chunked", "gzip, chunked", "x"])),
    st.tuples(st.just("Content-Encoding"), st.sampled_from(["gzip", "identity", "br"])),
    st.tuples(
        st.sampled_from(["Set-Cookie", "set-cookie"]),
        st.sampled_from(["sid=1; Path=/", "theme=dark", "other=1; Domain=other.test", "bad"]),
    ),
    st.tuples(st.sampled_from(["X-A", "x-a", "ETag"]), _VALID),
)


def _length_or_any(field: tuple[str, str]) -> object:
    return field[0].lower() if field[0].lower() == "content-length" else object()


ANSWERS = st.builds(
    SubResponse,
    st.sampled_from([200, 201, 204, 304, 404, 500, 101, 0]),
    st.sampled_from(["OK", "Not Found", ""]),
    # (two different lengths make urllib3 refuse the answer: plain requests raises then)
    st.lists(ANSWER_FIELDS, max_size=5, unique_by=_length_or_any).map(tuple),
    st.one_of(st.binary(max_size=40), st.just(_GZIPPED), st.just(b'{"a": 1}')),
)


@PROPERTY
@given(ANSWERS, st.sampled_from(["GET", "HEAD", "POST"]), st.booleans())
def test_each_response_is_what_requests_would_build(
    answer: SubResponse, method: str, stream: bool
) -> None:
    request = requests.Request(method, f"{BASE}/items/1").prepare()
    ours = RequestsBatchResponse()
    ours.request = request
    ours.url = f"{BASE}/items/1"
    queued = Queued(request, part_of(request), (), TransportArguments((None, None), None, stream))
    session_cookies = RequestsCookieJar()
    fill(ours, queued, answer, elapsed=timedelta(0), session_cookies=session_cookies)
    theirs, read = what_requests_builds(request, answer, stream=stream)
    assert answer_fields(ours) == answer_fields(theirs, read)
    assert cookies_in(session_cookies) == cookies_in(theirs.cookies)


def test_a_response_has_every_attribute_requests_response_sets() -> None:
    """``RequestsBatchResponse`` sets ``requests.Response()``'s attributes itself, to make
    queueing cheaper: an upgrade of requests that adds one fails here, not in use."""
    request = requests.Request("GET", f"{BASE}/items/1").prepare()
    ours = RequestsBatchResponse()
    with pytest.raises(BatchNotSent):
        ours.cookies  # noqa: B018 (reading it is the test)
    queued = Queued(request, part_of(request), (), TransportArguments((None, None), None, False))
    fill(
        ours,
        queued,
        SubResponse(200, "OK", (), b"{}"),
        elapsed=timedelta(0),
        session_cookies=RequestsCookieJar(),
    )
    theirs = requests.Response()
    for name in vars(theirs):
        assert hasattr(ours, name), name
    assert (ours.history, ours.cookies.keys(), ours.elapsed) == ([], [], timedelta(0))
    assert ours.url is None  # as requests leaves a response its adapter did not set
    assert pickle.loads(pickle.dumps(ours)).json() == {}  # unpickled, not pending again
    # Filled, it is still a RequestsBatchResponse, but no read goes through the pending
    # guard (a Python call per attribute read: docs/performance.md).
    assert isinstance(ours, RequestsBatchResponse)
    assert type(ours).__getattribute__ is object.__getattribute__
    assert RequestsBatchResponse.__getattribute__ is not object.__getattribute__


class _Recording(RequestsAdapter):
    """The fake endpoint's adapter, keeping each request the session sent it."""

    def __init__(self, endpoint: FakeEndpoint) -> None:
        super().__init__(endpoint)
        self.sent: list[requests.PreparedRequest] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.sent.append(request)
        return super().send(request, **kwargs)


@pytest.mark.parametrize(
    "change", [_set_header("X-Client", "ours"), _set("auth", ("ada", "pw")), _add_hook]
)
def test_the_batch_request_is_prepared_as_requests_prepares_it(change: Change) -> None:
    """The batch ``POST`` (and the discovery ``GET``) carry the session's settings exactly as
    ``prepare_request`` applies them, but not its hooks (they see each part's response)."""
    adapter = _Recording(FakeEndpoint(description={"max_parts": 100}))
    with Batching(BATCH_URL, discover=True, max_parts=1) as session:
        session.mount(BASE, adapter)
        change(session)
        session.cookies.set("sid", "abc")
        session.get(f"{BASE}/a")
        session.get(f"{BASE}/b")
    # The discovery and the first batch go at once: which is sent first is the threads' say.
    discovery = next(sent for sent in adapter.sent if sent.method == "GET")
    batch = next(sent for sent in adapter.sent if sent.method == "POST")
    for sent in (discovery, batch):
        headers = {"Accept": "application/json"} if sent is discovery else None
        if headers is None:  # the batch asks for its answer in gzip (docs/compression.md)
            headers = {"Content-Type": sent.headers["Content-Type"], "Accept-Encoding": "gzip"}
        theirs = requests.Session.prepare_request(
            session, requests.Request(sent.method, BATCH_URL, data=sent.body, headers=headers)
        )
        assert (sent.method, sent.url, sent.body) == (theirs.method, theirs.url, theirs.body)
        assert list(sent.headers.items()) == list(theirs.headers.items())
        assert sent.hooks == {"response": []}
