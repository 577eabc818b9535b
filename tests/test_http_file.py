"""The ``.http`` file reader of the command line (flask_batch/cli/_http_file.py): the format
of the VS Code REST Client and the JetBrains HTTP Client, every error with its line, and
hostile files read in linear time without blowing up."""

from __future__ import annotations

import pytest

from flask_batch.cli._http_file import (
    MAX_EXPANSION,
    MAX_NESTING,
    BodyFile,
    HttpFile,
    HttpFileError,
    Variables,
    parse,
)

from .child import run_in_child

SEVERAL = """\
@host = http://127.0.0.1:5000
@person = alice

# Who is there
GET {{host}}/people HTTP/1.1
Accept: application/json

### create {{person}}
POST {{host}}/people
Content-Type: application/json
// a comment between headers

{"name": "{{person}}",
 "age": 31}


###
# @name bare
{{host}}/people/{{person}}
    ?fields=name
    &limit=1
"""


def expanded(
    file: HttpFile, given: dict[str, str] | None = None, **environ: str
) -> list[tuple[str, str, list[tuple[str, str]], str | None]]:
    values = Variables(file, given or {}, environ)
    return [
        (
            request.method,
            values.expand(request.url, request.line),
            [(name, values.expand(value, line)) for name, value, line in request.headers],
            None
            if not isinstance(request.body, str)
            else values.expand(request.body, request.body_line),
        )
        for request in file.requests
    ]


def error_of(text: str, given: dict[str, str] | None = None, **environ: str) -> str:
    with pytest.raises(HttpFileError) as raised:
        expanded(parse(text, "api.http"), given, **environ)
    return str(raised.value)


def test_requests_separated_by_three_hashes_with_variables_comments_and_bodies() -> None:
    file = parse(SEVERAL, "api.http")
    assert [(request.line, request.name) for request in file.requests] == [
        (5, None),
        (9, "create {{person}}"),
        (19, "bare"),
    ]
    assert expanded(file) == [
        ("GET", "http://127.0.0.1:5000/people", [("Accept", "application/json")], None),
        (
            "POST",
            "http://127.0.0.1:5000/people",
            [("Content-Type", "application/json")],
            '{"name": "alice",\n "age": 31}',
        ),
        ("GET", "http://127.0.0.1:5000/people/alice?fields=name&limit=1", [], None),
    ]


def test_given_variables_win_over_the_file_and_the_environment_is_read_on_request() -> None:
    file = parse("@who = alice\nGET http://h/{{who}}?home={{$processEnv HOME}}\n")
    assert expanded(file, {"who": "bob"}, HOME="/root")[0][1] == "http://h/bob?home=/root"


def test_file_variables_use_other_variables_defined_anywhere_in_the_file() -> None:
    text = "@base = {{scheme}}://{{host}}\nGET {{base}}/x\n###\n@scheme = http\n@host = h\n"
    assert expanded(parse(text))[0][1] == "http://h/x"


def test_lower_case_methods_a_bare_url_and_windows_line_ends() -> None:
    file = parse("delete http://h/a HTTP/2\r\n\r\n###\r\nhttp://h/b\r\n")
    assert [(r.method, r.url) for r in file.requests] == [
        ("DELETE", "http://h/a"),
        ("GET", "http://h/b"),
    ]


def test_a_multipart_body_keeps_crlf_line_ends() -> None:
    text = (
        "POST http://h/up\nContent-Type: multipart/form-data; boundary=b\n\n"
        "--b\nContent-Disposition: form-data; name=a\n\n1\n--b--\n"
    )
    (request,) = parse(text).requests
    assert request.body == "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--"


def test_a_body_from_a_file_raw_or_with_its_variables() -> None:
    file = parse("POST http://h/a\n\n< ./data.bin\n###\nPOST http://h/b\n\n<@latin1 ./body.txt\n")
    assert [request.body for request in file.requests] == [
        BodyFile("./data.bin", substitute=False, encoding="utf-8", line=3),
        BodyFile("./body.txt", substitute=True, encoding="latin1", line=7),
    ]


def test_an_xml_body_is_not_a_file_reference() -> None:
    (request,) = parse("POST http://h/a\n\n<?xml version='1.0'?>\n<a/>\n").requests
    assert request.body == "<?xml version='1.0'?>\n<a/>"


def test_names_from_metadata_comments() -> None:
    text = (
        "# @name first\nGET http://h/1\n###\n"
        "// @name = second\nGET http://h/2\n###\n"
        "# @name=third\nGET http://h/3\n"
    )
    assert [request.name for request in parse(text).requests] == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "no request in the file"),
        ("# only a comment\n@a = 1\n", 1, "no request in the file"),
        ("GET http://h/a\nnot a header\n", 2, "expected a header (Name: value)"),
        ("GET http://h/a\nBad Name: x\n", 2, "expected a header"),
        ("FETCH http://h/a\n", 1, "expected METHOD URL [HTTP/1.1]"),
        ("GET http://h/a extra\n", 1, "expected METHOD URL"),
        ("\n\nGRAPHQL http://h/graphql\n", 3, "GRAPHQL requests cannot be sent in a batch"),
        ("@ = 1\nGET http://h/\n", 1, "expected a file variable"),
        ("@a 1\nGET http://h/\n", 1, "expected a file variable"),
        ("@a = 1\n###\n@a = 2\nGET http://h/\n", 3, "defined twice (first on line 1)"),
        ("# @prompt token\nGET http://h/\n", 1, "--var NAME=VALUE"),
        ("GET http://h/\n\n{}\n\n> {% client.test() %}\n", 5, "response handlers"),
        ("GET http://h/\n\n>> ./saved.json\n", 3, "response handlers"),
        ("POST http://h/\n\n< ./a.json\nmore\n", 4, "must be the body's only line"),
    ],
)
def test_a_bad_file_is_refused_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(HttpFileError) as raised:
        parse(text, "api.http")
    assert raised.value.line == line
    assert str(raised.value).startswith(f"api.http:{line}: ")
    assert message in raised.value.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("GET http://h/{{nope}}\n", 1, "unknown variable {{nope}}"),
        ('POST http://h/\n\n{\n  "a": {{nope}}\n}\n', 4, "unknown variable {{nope}}"),
        ("@a = {{b}}\n@b = {{a}}\nGET http://h/{{a}}\n", 2, "refers to itself: a -> b -> a"),
        ("GET http://h/{{$processEnv MISSING}}\n", 1, "environment variable MISSING is not set"),
        ("GET http://h/{{$dotenv KEY}}\n", 1, "{{$dotenv KEY}} is not supported"),
        ("GET http://h/{{$randomInt 5 1}}\n", 1, "expected $randomInt MIN MAX"),
        ("GET http://h/\nX-A: {{$processEnv %indirect}}\n", 2, "is not supported"),
    ],
)
def test_a_bad_variable_is_refused_with_the_line_it_is_used_on(
    text: str, line: int, message: str
) -> None:
    found = error_of(text)
    assert found.startswith(f"api.http:{line}: ")
    assert message in found


def test_system_variables() -> None:
    text = "GET http://h/{{$guid}}/{{$uuid}}/{{ $timestamp }}/{{$randomInt 3 4}}/{{$randomInt}}\n"
    url = expanded(parse(text))[0][1]
    guid, uuid, timestamp, three, random = url.removeprefix("http://h/").split("/")
    assert len(guid) == len(uuid) == 36
    assert guid != uuid
    assert timestamp.isdigit()
    assert three == "3"
    assert 0 <= int(random) < 1000


def test_a_brace_without_its_pair_is_text() -> None:
    assert expanded(parse("GET http://h/{{a\n"))[0][1] == "http://h/{{a"


def test_variables_that_double_at_every_level_are_refused_before_they_blow_up() -> None:
    # The "billion laughs": 40 levels of doubling would be a terabyte; each level is expanded
    # once, and the text is refused as soon as it passes the bound.
    lines = ["@v0 = xxxxxxxxxxxxxxxx"]
    lines += [f"@v{level} = {{{{v{level - 1}}}}}{{{{v{level - 1}}}}}" for level in range(1, 41)]
    text = "\n".join([*lines, "GET http://h/{{v40}}"])
    message = error_of(text)
    assert f"more than {MAX_EXPANSION} characters" in message


def test_variables_nested_too_deep_are_refused_not_a_recursion_error() -> None:
    lines = [f"@v{level} = {{{{v{level + 1}}}}}" for level in range(10_000)]
    text = "\n".join([*lines, "@v10000 = end", "GET http://h/{{v0}}"])
    assert f"nest deeper than {MAX_NESTING} levels" in error_of(text)


@pytest.mark.parametrize(
    "hostile",
    [
        "'GET http://h/' + '{{' * 2_000_000",  # openers without closers
        "'GET http://h/' + '{{ ' + ' ' * 4_000_000",  # one opener, then blanks
        "'GET http://h/\\n\\n' + '{{a}}\\n' * 400_000 + '\\n@a = 1'",  # many uses, many lines
        "'GET http://h/\\n' + 'X-A: 1\\n' * 400_000",  # many headers
        "'GET http://h/\\n' + ' ?a=1\\n' * 400_000",  # a URL continued on many lines
        "'###\\n' * 1_000_000 + 'GET http://h/'",  # many empty sections
        "'GET http://h/\\n\\n> ' + 'a' * 4_000_000",  # a body line that looks like a handler
        "'# @name ' + 'x' * 4_000_000 + '\\nGET http://h/'",
    ],
)
def test_hostile_files_are_read_in_linear_time(hostile: str) -> None:
    # Each takes well under a second when the work is linear; a quadratic step would take
    # minutes, which the child's bound turns into a failure (no wall time is asserted).
    result = run_in_child(
        "from flask_batch.cli._http_file import Variables, parse, HttpFileError\n"
        f"text = {hostile}\n"
        "try:\n"
        "    file = parse(text)\n"
        "    values = Variables(file, {}, {})\n"
        "    for request in file.requests:\n"
        "        values.expand(request.url, request.line)\n"
        "        for _, value, line in request.headers:\n"
        "            values.expand(value, line)\n"
        "        if isinstance(request.body, str):\n"
        "            values.expand(request.body, request.body_line)\n"
        "except HttpFileError as error:\n"
        "    print(error.message[:60])\n"
        "print('read')\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.endswith("read\n")


def test_an_error_quotes_a_long_name_and_many_variables_in_short() -> None:
    variables = "\n".join(f"@v{index} = {index}" for index in range(1000))
    message = error_of(f"{variables}\nGET http://h/{{{{{'x' * 100_000}}}}}\n")
    assert len(message) < 400
    assert "(defined: v0, v1, v10, v100, v101, v102, v103, v104, v105, v106, ...;" in message
