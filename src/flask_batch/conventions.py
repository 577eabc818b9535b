"""Which dialect a batch request speaks, and how a route spells its answers.

The route's :class:`Conventions` (options neither a limit nor how parts run) and the batch
request's :class:`Versions` (the version headers it carries: OData's, Azure Storage's)
decide together: the JSON
answers' header spelling (:func:`json_dialect`); whether a multipart batch is OData's, which
stops at its first error and answers as OData's reference servers write (:func:`speaks_odata`);
and the status of the batch's answer (:func:`answer_status`). docs/dialects.md says how
each is recognised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .part_headers import check_header_patterns
from .wire.json_answers import JSON_DIALECTS, JsonDialect
from .wire.model import option

__all__ = [
    "ANSWER_STATUSES",
    "JSON_DIALECT_OPTIONS",
    "MULTIPART_DIALECTS",
    "Conventions",
    "Versions",
    "answer_status",
    "json_dialect",
    "odata_version",
    "speaks_odata",
]

#: The ``multipart_dialect`` option's values: "auto" decides by the request (:func:`speaks_odata`).
MULTIPART_DIALECTS = ("auto", "google", "odata")
#: The ``answer_status`` option's values: "auto" decides by the request (:func:`answer_status`).
ANSWER_STATUSES = ("auto", 200, 202)
#: The ``json_dialect`` option's values: "auto" decides by the request (:func:`json_dialect`).
JSON_DIALECT_OPTIONS = ("auto", *JSON_DIALECTS)


@dataclass(frozen=True, slots=True)
class Conventions:
    """How a route judges a part's headers and spells its answers: options that are neither
    a limit nor how parts run."""

    pinned_headers: tuple[str, ...] = option(
        (),
        "header names (or patterns, * for any characters, any case) that only the batch "
        "request may carry, added to the built-in set",
    )
    json_dialect: str = option(
        "auto",
        'how JSON answers spell header names: "graph" (Content-Type), "odata" (content-type), '
        "or \"auto\": OData's when the batch request carries OData-Version, else Graph's",
    )
    multipart_dialect: str = option(
        "auto",
        'the dialect of multipart batches: "google" (every part runs whatever the others '
        'answer), "odata" (the batch stops at its first failed request, and its answer ends '
        'there, unless it prefers odata.continue-on-error), or "auto": OData\'s when the batch '
        "request carries an OData version header, else Google's",
    )
    answer_status: int | str = option(
        "auto",
        'the status of a batch\'s answer: 200, 202, or "auto": 202 when the batch request says '
        "it speaks OData 1.0 to 3.0 (DataServiceVersion or MaxDataServiceVersion) or Azure "
        "Storage's REST API (x-ms-version), whose clients require it, else 200",
    )
    flat_changesets: bool = option(
        False,
        "answer each member of a changeset that succeeded as a part of the batch's answer "
        "(SharePoint's client reads them so), instead of one multipart part per changeset "
        "(OData's rule); a failed changeset is one part either way",
    )
    compress_answers: bool = option(
        True,
        "gzip the batch's answer when the batch request's Accept-Encoding takes it; False for "
        "a route whose answers mix secrets with what a third party can put in them (BREACH)",
    )

    def __post_init__(self) -> None:
        # Any iterable of names is taken; a string is refused (it is not a list of names).
        object.__setattr__(self, "pinned_headers", check_header_patterns(self.pinned_headers))
        if self.json_dialect not in JSON_DIALECT_OPTIONS:
            raise ValueError(
                f"json_dialect must be one of {list(JSON_DIALECT_OPTIONS)}, "
                f"not {self.json_dialect!r}"
            )
        if self.multipart_dialect not in MULTIPART_DIALECTS:
            raise ValueError(
                f"multipart_dialect must be one of {list(MULTIPART_DIALECTS)}, "
                f"not {self.multipart_dialect!r}"
            )
        if self.answer_status not in ANSWER_STATUSES or type(self.answer_status) is bool:
            raise ValueError(
                f"answer_status must be one of {list(ANSWER_STATUSES)}, not {self.answer_status!r}"
            )
        if type(self.flat_changesets) is not bool:
            raise ValueError(f"flat_changesets must be True or False, not {self.flat_changesets!r}")
        if type(self.compress_answers) is not bool:
            raise ValueError(
                f"compress_answers must be True or False, not {self.compress_answers!r}"
            )


@dataclass(frozen=True, slots=True)
class Versions:
    """The version headers of a batch request that say its dialect (None: absent)."""

    #: ``OData-Version`` (or ``OData-MaxVersion``): OData 4.0 and later.
    odata: str | None = None
    #: ``DataServiceVersion`` (or ``MaxDataServiceVersion``): OData 1.0 to 3.0.
    data_service: str | None = None
    #: ``x-ms-version``: Azure Storage's REST API, which every request to it carries.
    storage: str | None = None

    @classmethod
    def read(cls, header: Callable[[str], str | None]) -> Versions:
        """The versions ``header`` (the value of a header by its name, or None) gives."""
        return cls(
            header("OData-Version") or header("OData-MaxVersion"),
            header("DataServiceVersion") or header("MaxDataServiceVersion"),
            header("x-ms-version"),
        )


def json_dialect(conventions: Conventions, versions: Versions) -> JsonDialect:
    """The JSON dialect of an answer: the route's choice, or with "auto", OData when the batch
    request says it speaks OData 4 (OData JSON 4.01 section 19.5 wants lower-case header
    names), else Microsoft Graph's (the usual capitalisation, which its clients look for)."""
    option = conventions.json_dialect
    if option == "auto":
        return "odata" if versions.odata else "graph"
    return "odata" if option == "odata" else "graph"


def answer_status(conventions: Conventions, versions: Versions) -> int:
    """The status of a batch's answer: the route's choice, or with "auto", ``202 Accepted``
    for a request that says it speaks OData 1.0 to 3.0 (their clients, pyodata and Azure's,
    raise on any other) or Azure Storage's REST API (Azure answers both of its batches, the
    blob batch and table transactions, ``202``, and its clients raise on any other), else
    ``200 OK`` (OData 4, Google, Microsoft Graph)."""
    status = conventions.answer_status
    if status == "auto":
        return 202 if versions.data_service or versions.storage else 200
    assert isinstance(status, int)
    return status


def speaks_odata(conventions: Conventions, versions: Versions) -> bool:
    """Whether a multipart batch is OData's: the route's choice, or with "auto", whether the
    request carries an OData version header (any of the four). Google's clients send none."""
    dialect = conventions.multipart_dialect
    if dialect == "auto":
        return bool(versions.odata or versions.data_service)
    return dialect == "odata"


def odata_version(versions: Versions) -> str | None:
    """The ``OData-Version`` of the answer to a request that speaks OData 4 (None: another),
    as OData's services say which version they answered in: 4.01 if it asked for 4.01."""
    if not versions.odata:
        return None
    return "4.01" if versions.odata.strip().startswith("4.01") else "4.0"
