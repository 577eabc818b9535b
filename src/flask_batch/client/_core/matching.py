"""Which answer of a batch answer is whose: by id, by position, and for the members of an
atomic group, by the shapes servers answer a group in. No I/O.

Requests are matched by the id their answer echoes (``Content-ID``, a JSON ``id``); by
position only when the server echoes none. An atomic group's members are answered in one of
these shapes, and each member gets what the server said for it:

- each member its own answer: a changeset that succeeded (one nested ``multipart/mixed``
  part), a route that answers changesets flat (each member a part of its own), and the JSON
  format, where a failed group answers its failing member with its own answer and the others
  ``424``;
- one ``application/http`` part for the whole changeset, which failed (OData's rule): the
  member whose Content-ID it carries gets it; every other member gets a ``424 Failed
  Dependency`` the client writes (a problem document naming the member that failed), as the
  JSON format answers them, since none of them was applied. When that part names no member
  (a server that echoes no Content-ID), which member failed cannot be told, and every member
  gets that answer, as OData says it "applies to all requests in the change set".

An answer may also end early: an OData batch stops at its first failed request unless it
prefers ``odata.continue-on-error``, and answers nothing after it (:func:`stopped_at`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ...wire.dependencies import request_key
from ...wire.errors import problem_response
from ...wire.model import Group, SubRequest, SubResponse
from ...wire.multipart_answers import ReadAnswer
from .formats import Format
from .groups import failed_with, units

__all__ = ["Sent", "match", "repeated_id", "request_ids", "stopped_at"]


class Sent(NamedTuple):
    """A request as it was sent in a batch: its id, its group, and what it asked (a named
    tuple: one is made per request of every answered batch)."""

    content_id: str
    group: Group | None
    method: str
    target: str

    @property
    def described(self) -> str:
        """``METHOD target``, to name it in what the client writes for the others of its
        group."""
        return f"{self.method} {self.target}"


def request_ids(requests: Sequence[SubRequest], format: Format) -> list[str]:
    """Each request's id in its run: its own (which references name it by), or one the
    format makes, never one of those given; ``ValueError`` if two are given one id."""
    given = [request_key(request.content_id) for request in requests if request.content_id]
    taken = set(given)
    if len(taken) < len(given):
        raise ValueError("two requests have the same content_id")
    ids = []
    for index, request in enumerate(requests):
        if request.content_id:
            ids.append(request.content_id)
            continue
        made = candidate = format.content_id(index)
        count = 0
        while taken and request_key(candidate) in taken:  # a given id a format could make ("1")
            count += 1
            candidate = f"{made}-{count}"
        ids.append(candidate)
    return ids


def repeated_id(answers: Sequence[ReadAnswer]) -> str | None:
    """The first id that two answers echo: then which is whose cannot be told."""
    seen: set[str] = set()
    for answer in answers:
        if answer.content_id is not None:
            if answer.content_id in seen:
                return answer.content_id
            seen.add(answer.content_id)
    return None


def match(sent: Sequence[Sent], answers: Sequence[ReadAnswer]) -> list[SubResponse | None]:
    """The answer to each request of ``sent`` (None: none), in order; ``answers`` echo no id
    twice (:func:`repeated_id`)."""
    by_id = {a.content_id: a for a in answers if a.content_id is not None}
    groups = [request.group for request in sent]
    if by_id and not any(group is not None for group in groups):
        # No atomic group: each request's answer is the one that echoes its id (most are).
        return [
            None if (a := by_id.get(request.content_id)) is None else a.response for request in sent
        ]
    sent_units = units(groups)
    parts = _parts(answers)
    if not by_id:
        return _by_position(sent, sent_units, parts, answers)
    matched: list[SubResponse | None] = [None] * len(sent)
    # A part answering a whole unit can be found by its place only if every unit got one.
    by_place = parts if len(parts) == len(sent_units) else None
    for place, unit in enumerate(sent_units):
        found = [by_id.get(sent[index].content_id) for index in unit]
        present = [answer for answer in found if answer is not None]
        in_group = sent[unit[0]].group is not None
        if in_group and len(unit) > 1 and len(present) == 1 and _stands_for_group(present[0]):
            _collapsed(matched, sent, unit, present[0], carrier=found.index(present[0]))
        elif in_group and not present and by_place is not None:
            (only, *more) = by_place[place]
            if not more and only.content_id is None and _stands_for_group(only):
                _collapsed(matched, sent, unit, only, carrier=None)
        else:
            for index, answer in zip(unit, found, strict=True):
                matched[index] = None if answer is None else answer.response
    return matched


def stopped_at(answers: Sequence[SubResponse | None], found: Sequence[Sequence[int]]) -> int | None:
    """Where a batch stopped at its first error, as an OData batch does (OData 4.01 Part 1,
    11.7.7.4): the unit of ``found`` (the batch's :func:`~.groups.units`; ``answers``, what
    :func:`match` gave each request) whose failure its answer ends with, every unit before it
    answered and none after it; None if the answer did not end so."""
    if not found or any(answers[place] is not None for place in found[-1]):
        return None  # the last request (or group) was answered: it went to the end
    answered = [any(answers[place] is not None for place in unit) for unit in found]
    last = len(answered) - 1 - answered[::-1].index(True) if True in answered else None
    if last is None or last == len(found) - 1 or not all(answered[:last]):
        return None
    status = failed_with([a.status for place in found[last] if (a := answers[place]) is not None])
    return last if status is not None and status >= 400 else None


def _parts(answers: Sequence[ReadAnswer]) -> list[list[ReadAnswer]]:
    """The answers by the part of the batch answer they came in, in order."""
    parts: list[list[ReadAnswer]] = []
    for answer in answers:
        if parts and parts[-1][0].part == answer.part:
            parts[-1].append(answer)
        else:
            parts.append([answer])
    return parts


def _by_position(
    sent: Sequence[Sent],
    sent_units: list[list[int]],
    parts: list[list[ReadAnswer]],
    answers: Sequence[ReadAnswer],
) -> list[SubResponse | None]:
    """The answers of a server that echoes no id: part by part as the requests were sent (a
    changeset's answer nested, or one part for all of it), else one by one (flat)."""
    matched: list[SubResponse | None] = [None] * len(sent)
    if len(parts) == len(sent_units):
        for unit, part in zip(sent_units, parts, strict=True):
            if len(part) == len(unit) and (len(unit) == 1 or part[0].in_changeset):
                for index, answer in zip(unit, part, strict=True):
                    matched[index] = answer.response
            elif len(part) == 1 and _stands_for_group(part[0]):
                _collapsed(matched, sent, unit, part[0], carrier=None)
    elif len(answers) == len(sent):
        matched = [answer.response for answer in answers]
    return matched


def _stands_for_group(answer: ReadAnswer) -> bool:
    """Whether ``answer`` can be the one answer to a whole failed changeset (OData): an
    error, not nested in a changeset's answer."""
    return not answer.in_changeset and answer.response.status >= 400


def _collapsed(
    matched: list[SubResponse | None],
    sent: Sequence[Sent],
    unit: list[int],
    answer: ReadAnswer,
    carrier: int | None,
) -> None:
    """A failed group answered by one part (see the module's docstring): ``carrier`` is the
    place in ``unit`` of the member it names (None: it names none)."""
    response = answer.response
    if carrier is None:
        for index in unit:
            matched[index] = response
        return
    failed = sent[unit[carrier]].described
    status = f"{response.status} {response.reason}".rstrip()
    detail = (
        f"not applied: its atomic group failed, at {failed} ({status}), and the server "
        "answered the whole group with that answer"
    )
    for place, index in enumerate(unit):
        matched[index] = (
            response if place == carrier else problem_response(424, "Failed dependency", detail)
        )
