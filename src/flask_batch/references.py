"""References resolved as each request starts (docs/design.md section 3): a ``$<id>`` becomes
what the earlier request's answer says, once that answer is known.

What was checked before anything ran (:mod:`flask_batch.wire.references`): every reference
names an earlier request allowed to it, and makes its request depend on it, so that request
answered ``2xx`` before this one starts (else this one is answered ``424`` and never gets
here). What a reference stands for:

- in a URL or a JSON body, the entity: the ``Location`` of the earlier answer, resolved
  against the earlier request's URL (OData 4.01 Part 1, section 11.7.4), or, without one,
  the earlier request's own target (its path); what follows ``$<id>`` is appended. A URL
  gets the resulting path, a body string the absolute URL on the batch's origin;
- in ``If-Match`` or ``If-None-Match``, the earlier answer's ``ETag``.

The result is confined before the request goes anywhere: a ``Location`` on another origin or
outside the application, a path that leaves the service root (the batch URL's parent path)
once its dot segments are removed (RFC 3986, section 5.2.4), and an ETag reference to an
answer without one answer the request ``400`` (``"Invalid reference"``); it does not run.
The resolved target is then routed as any other (:mod:`flask_batch.targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, unquote_to_bytes, urljoin

from .schedule import Answers
from .targets import PATH_SAFE, PartRefused, Router
from .wire.dependencies import request_key
from .wire.model import Headers, SubRequest, SubResponse, first_header
from .wire.references import BODY, URL, Reference, remove_dot_segments, rewrite_body

__all__ = ["Resolver"]


class Resolver:
    """Resolves the references of one batch's requests (a ``Schedule``'s ``resolve``)."""

    def __init__(
        self,
        requests: Sequence[SubRequest],
        references: Sequence[tuple[Reference, ...]],
        router: Router,
    ) -> None:
        self._requests = requests
        self._references = references
        #: The requests some reference names: their answers stay whole once written.
        self.referenced = frozenset(r.earlier for found in references for r in found)
        self._router = router
        #: The path a request's URL reference led to, by its index: what a reference to it
        #: stands for when its answer has no Location.
        self._paths: dict[int, str] = {}

    def __call__(self, index: int, answers: Answers) -> SubRequest | SubResponse:
        """Request ``index`` with its references resolved from ``answers``, or the ``400``
        answer of a reference that cannot be."""
        request = self._requests[index]
        references = self._references[index]
        if not references:
            return request
        try:
            return self._resolved(index, request, references, answers)
        except PartRefused as refusal:
            return refusal.answer()

    def _resolved(
        self,
        index: int,
        request: SubRequest,
        references: tuple[Reference, ...],
        answers: Answers,
    ) -> SubRequest:
        target, headers, body = request.target, request.headers, request.body
        urls: list[tuple[tuple[int, int], str]] = []
        for reference in references:
            if reference.place == URL:
                target = self._target(reference, answers)
                self._paths[index] = target.partition("?")[0]
            elif reference.place == BODY:
                urls.append((reference.span, self._router.url(self._target(reference, answers))))
            else:
                headers = self._etag(reference, headers, answers)
        if urls:
            body = rewrite_body(body, urls)
        return request._replace(target=target, headers=headers, body=body)

    def _target(self, reference: Reference, answers: Answers) -> str:
        """The origin-form target a URL (or body) reference stands for, confined."""
        base = self._entity(reference, answers)
        path, mark, query = reference.rest.partition("?")
        if path:  # "/Orders": the entity's path, without a trailing slash, and the rest
            base = base.rstrip("/")
        resolved = remove_dot_segments(base + path)
        decoded = unquote_to_bytes(resolved)
        root = self._router.service_root
        written = f"{self._named(reference)}{reference.rest[:80]}"
        if b"/./" in decoded + b"/" or b"/../" in decoded + b"/":
            raise PartRefused(
                "Invalid reference",
                f"{written} leads to {resolved[:80]}, whose percent-encoding hides dot segments",
            )
        if not decoded.startswith(root):
            raise PartRefused(
                "Invalid reference",
                f"{written} leads to {resolved[:80]}, outside the service root "
                f"{root.decode('utf-8', 'replace')}",
            )
        return resolved + mark + query

    def _entity(self, reference: Reference, answers: Answers) -> str:
        """The path of the entity request ``reference.earlier`` created or returned: its
        answer's ``Location`` (on this origin), else its own target's path."""
        own = self._path(reference.earlier)
        answer = answers[reference.earlier]
        location = None if answer is None else first_header(answer.headers, "location")
        if not location:
            return own
        try:
            route = self._router.route(urljoin(self._router.url(own), location.strip()))
        except (PartRefused, ValueError) as error:  # ValueError: "http://[::1/x" say
            raise PartRefused(
                "Invalid reference",
                f"{self._named(reference)} stands for {location[:80]}, the Location its "
                f"request answered: {error}",
            ) from None
        return quote(route.raw_path, safe=PATH_SAFE + "%", encoding="latin-1")

    def _path(self, index: int) -> str:
        """The path request ``index`` went to (its reference resolved, if it had one)."""
        path = self._paths.get(index)
        if path is None:
            request = self._requests[index]
            path = self._router.route(request.target, request.method).raw_path
        return path

    def _etag(self, reference: Reference, headers: Headers, answers: Answers) -> Headers:
        """``headers`` with the one ``reference`` is the value of replaced by the ETag of the
        answer it names."""
        answer = answers[reference.earlier]
        etag = None if answer is None else first_header(answer.headers, "etag")
        if etag is None:
            raise PartRefused(
                "Invalid reference",
                f"{reference.place}: {self._named(reference)} stands for the ETag of its "
                "request's answer, which has none",
            )
        return tuple(
            (name, etag if name.lower() == reference.place else value) for name, value in headers
        )

    def _named(self, reference: Reference) -> str:
        """``$<id>``, as the reference names its request."""
        content_id = self._requests[reference.earlier].content_id
        return f"${request_key(content_id or '')}"
