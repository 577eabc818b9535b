"""Every option is declared once (a field of Limits, Execution, Conventions or Routing) and
the rest reads it: the resolution of keywords and config keys, and the Configuration page's
table (docs/configuration.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flask_batch.conventions import Conventions
from flask_batch.intake import Routing
from flask_batch.options import OPTIONS, resolve_options
from flask_batch.wire.model import Limits

CONFIGURATION = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_the_documented_table_lists_every_option_with_its_config_key_in_order() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `(BATCH_\w+)` \|", CONFIGURATION.read_text(), re.MULTILINE)
    assert rows == [(option.name, option.config_key) for option in OPTIONS]


def test_every_option_says_what_it_does() -> None:
    assert all(option.doc and option.doc[0].islower() for option in OPTIONS)


def test_keywords_win_over_config_which_wins_over_defaults() -> None:
    config = {"BATCH_MAX_PARTS": 7, "BATCH_JSON_DIALECT": "odata", "BATCH_DEADLINE": 2.5}
    settings = resolve_options(config, {"max_parts": 3})
    assert settings.limits == Limits(max_parts=3, deadline=2.5)
    assert settings.conventions == Conventions(json_dialect="odata")
    assert resolve_options({}, {}).limits == Limits()


def test_an_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"max_partz.*max_parts"):
        resolve_options({}, {"max_partz": 3})


def test_pinned_headers_are_kept_as_a_tuple_of_checked_names() -> None:
    settings = resolve_options({}, {"pinned_headers": iter(["X-Tenant", "X-Internal-*"])})
    assert settings.conventions.pinned_headers == ("X-Tenant", "X-Internal-*")
    with pytest.raises(ValueError, match="is not a header name"):
        Conventions(pinned_headers=("X Tenant",))


def test_a_shared_route_takes_only_a_post_carrying_its_batch_query() -> None:
    settings = resolve_options({"BATCH_SHARED_PATH": True, "BATCH_BATCH_QUERY": "comp=batch"}, {})
    takes = settings.routing.takes
    assert takes("POST", "restype=container&comp=batch")  # any order, among other fields
    assert takes("POST", "comp=%62atch")  # compared percent-decoded
    assert not takes("POST", "comp=list")
    assert not takes("POST", "")
    assert not takes("GET", "comp=batch")
    assert Routing(shared_path=True).takes("POST", "anything=1")
    assert not Routing(shared_path=True).takes("OPTIONS", "")
    assert Routing().takes("DELETE", "")  # a path of its own: every request is the route's
