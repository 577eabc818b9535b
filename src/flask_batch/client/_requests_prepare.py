"""A queued call prepared as ``requests`` prepares it, without ``Session.prepare_request``.

``prepare_request`` costs about 100 µs a call, most of it spent again on what is the same for
every call of a batch: copying the session's cookie jar, merging its headers, reparsing the
batch origin's URL, looking for a netrc file. :class:`FastPreparer` does the same steps in
the same order with the session's settings merged once (and merged again whenever they
change), for the shapes of call it can prepare exactly; for any other (files, streamed
bodies, auth objects, per-call hooks, URLs requests would normalise...) it answers None and
the caller prepares the call the full way. ``tests/test_requests_equivalence.py`` compares
both with what ``requests`` itself prepares, over many calls and sessions.
"""

from __future__ import annotations

import functools
import json as stdlib_json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.cookiejar import CookieJar
from typing import Any

import requests
from requests.auth import _basic_auth_str
from requests.cookies import (
    RequestsCookieJar,
    cookiejar_from_dict,
    get_cookie_header,
    merge_cookies,
)
from requests.hooks import default_hooks
from requests.models import complexjson  # type: ignore[attr-defined]  # json or simplejson
from requests.sessions import merge_hooks, merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    check_header_validity,
    get_netrc_auth,
    requote_uri,
    super_len,
    to_native_string,
)

from ..wire.model import SubRequest
from ._requests_messages import part

#: What may follow the batch origin's ``scheme://host/`` for requests to leave a URL as it is:
#: characters that neither urllib3's parsing nor requests' requoting change, and
#: percent-escapes (checked further by :data:`_CHANGED_ESCAPE`).
_KEPT_URL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
#: A percent-escape requests would change: lower-case hex (urllib3 raises it), an unreserved
#: character (requests unquotes it), or a ``%`` that starts no escape (requests quotes it).
_CHANGED_ESCAPE = re.compile(
    r"%(?![0-9A-F]{2})|%(?:2[DE]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])"
)
#: Data types whose body requests builds in memory (others stream, or are files).
_PLAIN_DATA = (dict, list, tuple, str, bytes)
_FORM = "application/x-www-form-urlencoded"
#: ``complexjson.dumps(body, allow_nan=False)``, as requests encodes a ``json=`` body: with the
#: standard library's json, the encoder that call makes each time (about 1 µs), made once.
_dump_json: Callable[[Any], str | bytes] = (
    stdlib_json.JSONEncoder(allow_nan=False).encode
    if complexjson is stdlib_json
    else functools.partial(complexjson.dumps, allow_nan=False)
)
#: How requests encodes params and form data (a static method, not in its stubs).
_encode_params: Callable[[Any], Any] = requests.PreparedRequest._encode_params  # type: ignore[attr-defined]


#: A request's header fields as requests' ``CaseInsensitiveDict`` keeps them: by name in
#: lower case, the name as last set and the value, in the order first set.
Fields = dict[str, tuple[str, Any]]


class _SessionHeaders:
    """The session's headers merged once: as a call without headers of its own gets them
    (``prepared``), and as a call's own headers are merged into (``merged``: ``None``
    values still in); either None when only the full path can say what requests does."""

    __slots__ = ("merged", "prepared", "state")

    def __init__(self, state: tuple[tuple[Any, Any], ...]) -> None:
        #: The session's headers these were made from, in order.
        self.state = state
        self.merged: Fields | None = {}
        for name, value in state:
            if not isinstance(name, str):
                self.merged = None  # a bytes name: prepare_headers' own merging applies
                break
            self.merged[name.lower()] = (name, value)
        self.prepared = None if self.merged is None else _validated(self.merged, self.merged)


def _validated(fields: Fields, checked: Fields) -> Fields | None:
    """``fields`` without the ``None`` values (which requests' merging removes), with those
    of ``checked`` validated as requests validates them; None if it would refuse one."""
    kept = {key: field for key, field in fields.items() if field[1] is not None}
    try:
        for key in checked.keys() & kept.keys():
            check_header_validity(kept[key])
    except requests.exceptions.InvalidHeader:
        return None
    return kept


class FastPreparer:
    """Prepares the calls of one session to the batch origin (``prefix``: its
    ``scheme://host[:port]/`` as the session's URLs start with it)."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        canonical = requests.PreparedRequest()
        canonical.prepare_url(prefix, None)
        url = canonical.url or ""
        #: The prefix as requests writes it (host in lower case, IDNA...), or None if it has
        #: what would make the rest of a URL matter to it (credentials, escapes, ...).
        self._canonical: str | None = url
        if not url.endswith("/") or any(c in url for c in "@%?#") or requote_uri(url) != url:
            self._canonical = None
        self._headers = _SessionHeaders(())
        #: The netrc credentials for the batch origin, looked up once per batch.
        self._netrc: tuple[tuple[str, str] | None] | None = None
        #: The last (user, password) pair of str seen, and its Authorization header.
        self._basic: tuple[object, str] = ((), "")

    def new_batch(self) -> None:
        """Forget what was looked up for the last batch (the netrc file may have changed)."""
        self._netrc = None

    def prepare(  # noqa: PLR0917 (Session.request's arguments)
        self,
        session: requests.Session,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        hooks: Any = None,
        json: Any = None,
    ) -> tuple[requests.PreparedRequest, SubRequest] | None:
        """The call as ``session.prepare_request`` would prepare it (the arguments as
        ``Session.request`` takes them), and its part; None if this call's shape is not one
        prepared here, or if requests would raise on it: the full path then prepares it, or
        raises what requests raises."""
        if (
            self._canonical is None
            or files
            or hooks
            or not url.startswith(self._prefix)
            or not _is_basic(auth)
            or not _is_basic(session.auth)
            or type(data or {}) not in _PLAIN_DATA
            or not (headers is None or isinstance(headers, Mapping))
        ):
            return None
        rest = url[len(self._prefix) :]
        if (
            not _KEPT_URL.fullmatch(rest)
            or "/." in "/" + rest.partition("?")[0]
            or ("%" in rest and _CHANGED_ESCAPE.search(rest))
        ):
            return None
        try:
            return self._prepared(
                session, method, rest, params, data or {}, headers, cookies, auth, json
            )
        except Exception:
            return None

    def _prepared(  # noqa: PLR0917
        self,
        session: requests.Session,
        method: str,
        rest: str,
        params: Any,
        data: Any,
        headers: Any,
        cookies: Any,
        auth: Any,
        json: Any,
    ) -> tuple[requests.PreparedRequest, SubRequest] | None:
        """:meth:`prepare` for a call it can prepare: prepare_request's steps in its order."""
        fields = self._fields(session, headers)
        if fields is None:
            return None
        request = requests.PreparedRequest()
        request.method = method = method.upper()
        path, _, query = rest.partition("?")
        target = "/" + path + ("?" + query if query else "")
        if params or session.params:
            merged = merge_setting(params or {}, session.params)  # type: ignore[no-untyped-call]
            if isinstance(merged, (str, bytes)):
                merged = to_native_string(merged)  # type: ignore[no-untyped-call]
            encoded = "" if merged is None else _encode_params(merged)
            if not isinstance(encoded, str):
                return None
            if encoded:
                target = requote_uri(target + ("&" if query else "?") + encoded)
        request.url = f"{self._canonical}{target[1:]}"
        jar: CookieJar = RequestsCookieJar()
        if session.cookies or cookies:
            # Cookies to send: requests' own merge and Cookie header, as prepare_request does.
            if not isinstance(cookies, CookieJar):
                cookies = cookiejar_from_dict(cookies or {})  # type: ignore[no-untyped-call]
            merge_cookies(merge_cookies(jar, session.cookies), cookies)  # type: ignore[no-untyped-call]
            request.headers = _headers(fields)
            cookie = get_cookie_header(jar, request)  # type: ignore[no-untyped-call]
            if cookie is not None:
                fields["cookie"] = ("Cookie", cookie)
        request._cookies = jar  # type: ignore[attr-defined]  # not in requests' stubs
        request.body = body = _body(method, data, json, fields)
        hooks = session.hooks
        if hooks is not None and hooks.get("response") != []:
            request.prepare_hooks(merge_hooks(default_hooks(), hooks))  # type: ignore[no-untyped-call]
        if auth is None and session.auth is None and session.trust_env:
            if self._netrc is None:
                self._netrc = (get_netrc_auth(self._prefix),)
            auth = self._netrc[0]
        auth = auth if auth is not None else session.auth
        if auth:
            fields["authorization"] = ("Authorization", self._authorization(auth))
        request.headers = _headers(fields)
        return request, part(method, target, fields.items(), body)

    def _fields(self, session: requests.Session, headers: Any) -> Fields | None:
        """The call's header fields before its cookies, body and auth add theirs: the
        session's with the call's merged in, ``None`` values removed."""
        own = session.headers
        if not isinstance(own, Mapping):
            return None
        # A CaseInsensitiveDict's own store holds its items as they are: read without a lookup
        # per name (the items view calls ``lower()`` on each).
        state = tuple(
            own._store.values()  # type: ignore[attr-defined]  # not in requests' stubs
            if type(own) is CaseInsensitiveDict
            else own.items()
        )
        if state != self._headers.state:
            self._headers = _SessionHeaders(state)
        template = self._headers
        if template.prepared is None:
            return None
        if not headers:
            return dict(template.prepared)
        if template.merged is None:
            return None
        merged = dict(template.merged)
        call: Fields = {}
        for name, value in headers.items():
            if not isinstance(name, str):
                return None
            merged[name.lower()] = call[name.lower()] = (name, value)
        return _validated(merged, call)

    def _authorization(self, auth: tuple[Any, Any]) -> str:
        """The Authorization header ``HTTPBasicAuth`` sets for ``auth``."""
        if self._basic[0] == auth and all(type(part) is str for part in auth):
            return self._basic[1]
        value = _basic_auth_str(*auth)
        self._basic = (auth, value)
        return value


def _headers(fields: Fields) -> CaseInsensitiveDict[Any]:
    """``fields`` as the ``CaseInsensitiveDict`` requests would have built of them: its store
    is ``fields`` (name in lower case -> the name as set, and the value), copied at once."""
    headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
    headers._store = OrderedDict(fields)  # type: ignore[attr-defined]  # not in the stubs
    return headers


def _is_basic(auth: object) -> bool:
    """Whether ``auth`` is no auth or a (user, password) pair: what needs no prepared
    request to apply (an auth object may read or change anything in it)."""
    return auth is None or (type(auth) is tuple and len(auth) == 2)


def _body(method: str, data: Any, json: Any, fields: Fields) -> Any:
    """``PreparedRequest.prepare_body`` for a body built in memory (not a file, a stream or
    files: the caller checked): the body, its header fields added to ``fields``."""
    body: Any = None
    content_type = None
    if not data and json is not None:
        content_type = "application/json"
        body = _dump_json(json)
        if not isinstance(body, bytes):
            body = body.encode("utf-8")
    elif data:
        body = _encode_params(data)
        content_type = None if isinstance(data, (str, bytes)) else _FORM
    if body is not None:
        length = len(body) if isinstance(body, bytes) else super_len(body)  # type: ignore[no-untyped-call]
        if length:
            fields["content-length"] = ("Content-Length", str(length))
    elif method not in {"GET", "HEAD"} and "content-length" not in fields:
        fields["content-length"] = ("Content-Length", "0")
    if content_type and "content-type" not in fields:
        fields["content-type"] = ("Content-Type", content_type)
    return body
