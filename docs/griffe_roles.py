"""A griffe extension for the API reference (mkdocs.yml): the docstrings are written for
Sphinx-style readers (``:class:`Batching```, a ``::`` before an example), and the reference
renders Markdown; so each role becomes a code span and each ``::`` a colon, before rendering.

Why not links: a role often names a private or a relative name (``:func:`answer_status```),
which the reference does not show, and a link to nothing is an error under ``--strict``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:class:`~flask_batch.wsgi.BatchMiddleware``` and its kin, with the name's target.
ROLE = re.compile(
    r":(?:class|func|meth|data|attr|mod|exc|const|obj):`(?P<tilde>~?)(?P<name>[^`]+)`"
)
#: reStructuredText's literal-block marker at a line's end (``Server::``).
LITERAL = re.compile(r"::$", re.MULTILINE)


def markdown(docstring: str) -> str:
    """``docstring`` with its roles as code spans (``~`` keeps the last name, as Sphinx
    shows it) and its literal-block markers as colons."""

    def code(match: re.Match[str]) -> str:
        name = match["name"].rpartition(".")[2] if match["tilde"] else match["name"]
        return f"`{name}`"

    return LITERAL.sub(":", ROLE.sub(code, docstring))


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of a package once it is loaded: the package's own, and its
    modules', classes', functions' and attributes' (an alias is its target's)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        objects: list[griffe.Object] = [pkg]
        while objects:
            obj = objects.pop()
            if obj.docstring is not None:
                obj.docstring.value = markdown(obj.docstring.value)
            objects.extend(m for m in obj.members.values() if isinstance(m, griffe.Object))
