"""The Google / OData batch dialect: ``flask_batch.wire.multipart_requests`` and
``multipart_answers``.

Why: this is where framing and messages meet the contract of docs/design.md section 2: the raw
requests real clients send must become exactly the sub-requests they meant (targets, headers,
body bytes, Content-IDs byte for byte), parts that are not plain ``application/http`` must be
refused naming the part, and the answer must be what clients parse: no preamble, an unquoted
boundary, CRLF framing, the ``<response-X>`` Content-ID rule, one part per request in order.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_batch.wire.errors import LimitExceeded, MalformedBatch, UnsupportedMediaType
from flask_batch.wire.media_type import boundary_of
from flask_batch.wire.model import Headers, Limits, SubRequest, SubResponse
from flask_batch.wire.multipart_answers import (
    ResponseWriter,
    read_responses,
    request_content_id,
    response_content_id,
)
from flask_batch.wire.multipart_requests import RequestReader, encode_requests, read_requests

from .properties import PROPERTY

LIMITS = Limits()
GOLDEN = Path(__file__).parent / "data" / "golden"


def samples_dir() -> Path:
    local = Path(__file__).parent / "data" / "wire-samples"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "shared" / "wire-samples"


def sample(name: str) -> tuple[str, bytes]:
    """(Content-Type, multipart body) of a captured request: the outer HTTP head split off."""
    head, separator, body = (samples_dir() / name).read_bytes().partition(b"\r\n\r\n")
    assert separator
    for line in head.split(b"\r\n")[1:]:
        name_, _, value = line.partition(b":")
        if name_.strip().lower() == b"content-type":
            return value.strip().decode("latin-1"), body
    raise AssertionError(f"no Content-Type in {name}")


def body_of(parts: list[bytes], boundary: str = "b") -> bytes:
    """A CRLF multipart body from already formatted parts (MIME headers, blank line, content)."""
    dash = b"--" + boundary.encode()
    return b"".join(dash + b"\r\n" + part + b"\r\n" for part in parts) + dash + b"--\r\n"


def read(parts: list[bytes], limits: Limits = LIMITS) -> list[SubRequest]:
    return read_requests("multipart/mixed; boundary=b", [body_of(parts)], limits)


GET_PART = b"Content-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n"

# --------------------------------------------------------------------------------------------
# The four captured requests


FARM = "127.0.0.1:45477"
FARM_1_ID = "<dd69245b-df09-4fed-b71a-5ac24c11ace7 + {}>"
FARM_2_ID = "<e2cb1c54-bf60-4bc5-aec4-daf2ed272038 + {}>"
JSON_GET = (
    ("Content-Type", "application/json"),
    ("MIME-Version", "1.0"),
    ("accept", "application/json"),
)
GCLOUD = "gcloud-python/3.17.1  gl-python/3.11.7 gax/2.44.0 gccl/3.17.1"
STORAGE = "http://127.0.0.1:42817/storage/v1/b/my-bucket"


def test_google_api_python_client_sample_1() -> None:
    content_type, body = sample("google-api-python-client/001-POST-batch.request.raw")
    requests = read_requests(content_type, [body], LIMITS)
    dolly = b'{"name": "Dolly", "species": "sheep", "note": "Zo\\u00eb \\u2713"}'
    assert requests == [
        SubRequest(
            "GET",
            "/farm/v1/animals/1?fields=name",
            (*JSON_GET, ("Host", FARM)),
            b"",
            FARM_1_ID.format(1),
        ),
        SubRequest(
            "POST",
            "/farm/v1/animals",
            (*JSON_GET, ("Host", FARM), ("content-length", "64")),
            dolly,
            FARM_1_ID.format(2),
        ),
        SubRequest(
            "PATCH",
            "/farm/v1/animals/2",
            (*JSON_GET, ("Host", FARM), ("content-length", "17")),
            b'{"name": "Shaun"}',
            FARM_1_ID.format(3),
        ),
        SubRequest(
            "DELETE", "/farm/v1/animals/3", (*JSON_GET, ("Host", FARM)), b"", FARM_1_ID.format(4)
        ),
        SubRequest(
            "GET",
            "/farm/v1/animals/missing-7",
            (*JSON_GET, ("Host", FARM)),
            b"",
            FARM_1_ID.format(5),
        ),
        SubRequest(
            "PUT",
            "/farm/v1/animals/8",
            (*JSON_GET, ("Host", FARM), ("content-length", "18")),
            b'{"name": "custom"}',
            "<dd69245b-df09-4fed-b71a-5ac24c11ace7 + custom%20id%2B1/%C3%BC>",
        ),
    ]
    assert len(dolly) == 64


def test_google_api_python_client_sample_2() -> None:
    content_type, body = sample("google-api-python-client/002-POST-batch.request.raw")
    requests = read_requests(content_type, [body], LIMITS)
    common = (
        ("accept-encoding", "gzip, deflate"),
        ("user-agent", "(gzip)"),
        ("x-goog-api-client", "gdcl/2.202.0 gl-python/3.11.7"),
        ("Host", FARM),
    )
    assert [(r.method, r.target, r.body, r.content_id) for r in requests] == [
        ("GET", "/farm/v1/animals/10?fields=name%2Cspecies&alt=json", b"", FARM_2_ID.format(1)),
        (
            "POST",
            "/farm/v1/animals?alt=json",
            b'{"name": "Babe", "species": "pig"}',
            FARM_2_ID.format(2),
        ),
        ("PATCH", "/farm/v1/animals/11?alt=json", b'{"species": "goat"}', FARM_2_ID.format(3)),
        ("DELETE", "/farm/v1/animals/12", b"", FARM_2_ID.format(4)),
        ("GET", "/farm/v1/animals/missing-13?alt=json", b"", FARM_2_ID.format(5)),
    ]
    assert requests[0].headers == (*JSON_GET, *common)
    assert requests[1].headers == (*JSON_GET, *common, ("content-length", "34"))
    assert requests[3].headers == (
        ("Content-Type", "application/json"),
        ("MIME-Version", "1.0"),
        ("accept", "*/*"),
        *common,
    )


def storage_headers(invocation: str, *, json: bool = True) -> Headers:
    content_type = (("Content-Type", "application/json"),) if json else ()
    return (
        ("Accept-Encoding", "gzip"),
        *content_type,
        ("User-Agent", GCLOUD),
        ("x-goog-api-client", f"{GCLOUD} gccl-invocation-id/{invocation}"),
    )


def test_google_cloud_storage_sample_1() -> None:
    content_type, body = sample("google-cloud-storage/001-POST-batch_storage_v1.request.raw")
    requests = read_requests(content_type, [body], LIMITS)
    full = "?projection=full&prettyPrint=false"
    assert requests == [
        SubRequest(
            "PATCH",
            f"{STORAGE}/o/dir%2Fa.txt{full}",
            storage_headers("88877a03-37f6-414d-a2f2-ccb179570480"),
            b'{"metadata": {"color": "blue"}}',
        ),
        SubRequest(
            "PATCH",
            f"{STORAGE}/o/c%20d%2B%C3%A9.txt{full}",
            storage_headers("0dd524fd-ecab-4fa1-8154-3b44966cedda"),
            b'{"cacheControl": "no-cache", "contentType": "text/plain"}',
        ),
        SubRequest(
            "PUT",
            f"{STORAGE}/o/u.txt{full}",
            storage_headers("fb3db46b-18dd-4177-98e0-c4e4bd670c45"),
            b'{"contentLanguage": "en"}',
        ),
        SubRequest(
            "DELETE",
            f"{STORAGE}/o/b.txt?prettyPrint=false",
            storage_headers("a1056ee8-8c2a-4027-a0b6-745728cfa650", json=False),
            b"",
        ),
        SubRequest(
            "PATCH",
            f"{STORAGE}{full}",
            storage_headers("fcc4a3b0-98e8-43d6-9af6-a838b4d9766a"),
            b'{"labels": {"env": "test"}}',
        ),
        SubRequest(
            "DELETE",
            f"{STORAGE}/o/missing-blob.txt?prettyPrint=false",
            storage_headers("9ed1f0a6-18d1-4b93-8c8d-6deb05f4b39a", json=False),
            b"",
        ),
    ]


def test_google_cloud_storage_sample_2() -> None:
    content_type, body = sample("google-cloud-storage/002-POST-batch_storage_v1.request.raw")
    assert read_requests(content_type, [body], LIMITS) == [
        SubRequest(
            "PATCH",
            f"{STORAGE}/o/x.txt?projection=full&prettyPrint=false",
            storage_headers("d6442496-fa4f-4a26-9ca6-ab72e71a1a05"),
            b'{"metadata": {"k": "v"}}',
        ),
        SubRequest(
            "DELETE",
            f"{STORAGE}/o/missing-2.txt?prettyPrint=false",
            storage_headers("9b90ba05-1eee-4fb1-ad33-c9dc98061040", json=False),
            b"",
        ),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "google-api-python-client/001-POST-batch.request.raw",
        "google-api-python-client/002-POST-batch.request.raw",
        "google-cloud-storage/001-POST-batch_storage_v1.request.raw",
        "google-cloud-storage/002-POST-batch_storage_v1.request.raw",
    ],
)
def test_samples_read_the_same_in_any_chunks(name: str) -> None:
    content_type, body = sample(name)
    whole = read_requests(content_type, [body], LIMITS)
    for size in (1, 2, 3, 7, 64, 1000):
        chunks = [body[start : start + size] for start in range(0, len(body), size)]
        assert read_requests(content_type, chunks, LIMITS) == whole


def test_request_reader_feeds_and_closes() -> None:
    reader = RequestReader("b", LIMITS)
    body = body_of([GET_PART, GET_PART])
    reader.feed(body[:40])
    reader.feed(body[40:])
    assert [request.target for request in reader.close()] == ["/x", "/x"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=b"])
def test_a_multipart_reader_refuses_other_media_types(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        read_requests(content_type, [b""], LIMITS)


# --------------------------------------------------------------------------------------------
# Part headers


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json", "application/octet-stream", "message/http", "http"],
)
def test_part_content_type_other_than_application_http_refused(content_type: str) -> None:
    bad = f"Content-Type: {content_type}\r\n\r\nGET /x HTTP/1.1\r\n\r\n".encode()
    with pytest.raises(MalformedBatch, match="application/http") as info:
        read([GET_PART, bad, GET_PART])
    assert info.value.status == 400
    assert info.value.part == 2
    assert info.value.problem()["part"] == 2
    assert content_type in str(info.value)


@pytest.mark.parametrize(
    "headers",
    [
        b"",
        b"Content-Type: application/http\r\n",
        b"Content-Type: application/http; msgtype=request\r\n",
        b'content-type: Application/HTTP; msgtype="request"\r\n',
        b"Content-Type:application/http\r\nMIME-Version: 1.0\r\n",
    ],
)
def test_application_http_or_missing_content_type_accepted(headers: bytes) -> None:
    (request,) = read([headers + b"\r\nDELETE /y HTTP/1.1\r\n\r\n"])
    assert (request.method, request.target) == ("DELETE", "/y")


def test_part_content_type_unreadable_names_the_part() -> None:
    # Every refusal says where (errors.py): an unreadable part Content-Type is part 2's fault.
    bad = b"Content-Type: application/http; msgtype\r\n\r\nGET /x HTTP/1.1\r\n\r\n"
    with pytest.raises(MalformedBatch) as info:
        read([GET_PART, bad])
    assert info.value.part == 2


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "gzip", "x-custom"])
def test_content_transfer_encoding_refused(encoding: str) -> None:
    part = (
        f"Content-Type: application/http\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
        "R0VUIC94IEhUVFAvMS4xDQoNCg=="
    ).encode()
    with pytest.raises(MalformedBatch, match="Content-Transfer-Encoding") as info:
        read([part])
    assert info.value.part == 1
    assert encoding in str(info.value)
    assert "binary" in str(info.value)  # it says what to send instead


@pytest.mark.parametrize("encoding", ["binary", "8bit", "7bit", "BINARY", " Binary "])
def test_content_transfer_encoding_identity_accepted(encoding: str) -> None:
    part = (
        f"Content-Type: application/http\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
        "PUT /z HTTP/1.1\r\nContent-Length: 3\r\n\r\n\x00\xff\r"
    ).encode("latin-1")
    (request,) = read([part])
    assert request.body == b"\x00\xff\r"


@pytest.mark.parametrize(
    "content_id",
    [
        "<dd69245b-df09-4fed-b71a-5ac24c11ace7 + custom%20id%2B1/%C3%BC>",
        "7",
        "<>",
        "item:1",
        "<caf\xe9>",
    ],
)
def test_content_id_kept_exactly_as_sent(content_id: str) -> None:
    part = b"Content-ID: " + content_id.encode("latin-1") + b"\r\n" + GET_PART
    (request,) = read([part])
    assert request.content_id == content_id


def test_no_content_id_is_none() -> None:
    assert read([GET_PART])[0].content_id is None


def test_errors_inside_the_http_message_name_the_part() -> None:
    bad_line = b"Content-Type: application/http\r\n\r\nGET /a b HTTP/1.1\r\n\r\n"
    with pytest.raises(MalformedBatch, match="request line") as info:
        read([GET_PART, GET_PART, bad_line])
    assert info.value.part == 3
    big_head = b"\r\nGET /x HTTP/1.1\r\nX-Big: " + b"a" * 200 + b"\r\n\r\n"
    with pytest.raises(LimitExceeded) as limit:
        read([GET_PART, big_head], Limits(max_header_size=100))
    assert (limit.value.part, limit.value.limit) == (2, "max_header_size")


# --------------------------------------------------------------------------------------------
# Content-ID rules


@pytest.mark.parametrize(
    ("request_id", "response_id"),
    [
        ("<X>", "<response-X>"),
        (
            "<dd69245b-df09-4fed-b71a-5ac24c11ace7 + custom%20id%2B1/%C3%BC>",
            "<response-dd69245b-df09-4fed-b71a-5ac24c11ace7 + custom%20id%2B1/%C3%BC>",
        ),
        ("<>", "<response->"),
        ("7", "7"),
        ("item-1", "item-1"),
        ("<unclosed", "<unclosed"),
        (None, None),
    ],
)
def test_response_content_id_rule(request_id: str | None, response_id: str | None) -> None:
    assert response_content_id(request_id) == response_id
    assert request_content_id(response_id) == request_id


@pytest.mark.parametrize(
    ("response_id", "request_id"),
    [("<response-X>", "<X>"), ("<response->", "<>"), ("<other-X>", "<other-X>"), ("7", "7")],
)
def test_request_content_id(response_id: str, request_id: str) -> None:
    assert request_content_id(response_id) == request_id


@PROPERTY
@given(st.one_of(st.none(), st.text(), st.text().map(lambda text: f"<{text}>")))
def test_request_content_id_inverts_response_content_id(content_id: str | None) -> None:
    assert request_content_id(response_content_id(content_id)) == content_id


# --------------------------------------------------------------------------------------------
# ResponseWriter


def answered() -> list[tuple[SubRequest, SubResponse]]:
    return [
        (
            SubRequest("GET", "/a", (), b"", "<abc + 1>"),
            SubResponse(
                200,
                "OK",
                (("Content-Type", "application/json"), ("Connection", "close")),
                b'{"a": 1}',
            ),
        ),
        (
            SubRequest("HEAD", "/b", (), b"", "7"),
            SubResponse(200, "", (("Content-Length", "1234"),), b""),
        ),
        (
            SubRequest("POST", "/c", (), b"{}", None),
            SubResponse(
                404, "", (("Content-Type", "application/problem+json"),), b'{"status": 404}'
            ),
        ),
    ]


def write(writer: ResponseWriter, pairs: list[tuple[SubRequest, SubResponse]]) -> bytes:
    return b"".join(writer.part(response, request) for request, response in pairs) + (
        writer.close()
    )


def test_response_writer_matches_golden_bytes() -> None:
    output = write(ResponseWriter("batch_golden"), answered())
    assert output == (GOLDEN / "response-writer.multipart").read_bytes()


def test_response_writer_framing() -> None:
    writer = ResponseWriter()
    assert re.fullmatch(r"multipart/mixed; boundary=batch_[0-9a-f]{32}", writer.content_type)
    assert boundary_of(writer.content_type) == writer.boundary
    assert '"' not in writer.content_type
    assert ResponseWriter().boundary != writer.boundary
    output = write(writer, answered())
    dash = b"--" + writer.boundary.encode()
    assert output.startswith(dash + b"\r\n")  # no preamble
    assert output.endswith(b"\r\n" + dash + b"--\r\n")
    assert output.count(dash) == 4
    # No body here holds a line end, so every LF in the output is framing: all of them CRLF.
    assert b"\n" not in output.replace(b"\r\n", b"")
    assert b"\r" not in output.replace(b"\r\n", b"")
    assert b"Content-ID: <response-abc + 1>\r\n" in output
    assert b"Content-ID: 7\r\n" in output
    assert output.count(b"Content-ID") == 2


def test_response_writer_output_read_back() -> None:
    writer = ResponseWriter()
    output = write(writer, answered())
    assert read_responses(writer.content_type, output) == [
        (
            "<abc + 1>",
            SubResponse(
                200,
                "OK",
                (("Content-Type", "application/json"), ("Content-Length", "8")),
                b'{"a": 1}',
            ),
        ),
        ("7", SubResponse(200, "OK", (("Content-Length", "1234"),), b"")),
        (
            None,
            SubResponse(
                404,
                "Not Found",
                (("Content-Type", "application/problem+json"), ("Content-Length", "15")),
                b'{"status": 404}',
            ),
        ),
    ]


def test_response_writer_output_read_by_the_email_package() -> None:
    writer = ResponseWriter()
    output = write(writer, answered())
    message = email.message_from_bytes(
        b"Content-Type: " + writer.content_type.encode() + b"\r\n\r\n" + output,
        policy=email.policy.HTTP,
    )
    assert message.is_multipart()
    assert not message.defects
    assert message.preamble is None
    parts = message.get_payload()
    assert isinstance(parts, list)
    assert len(parts) == 3
    ids: list[str | None] = []
    for part in parts:
        assert isinstance(part, email.message.Message)
        assert part.get_content_type() == "application/http"
        assert not part.defects
        content = part.get_payload(decode=True)
        assert isinstance(content, bytes)
        assert content.startswith(b"HTTP/1.1 ")
        content_id = part.get("Content-ID")
        ids.append(None if content_id is None else str(content_id))
    assert ids == ["<response-abc + 1>", "7", None]


def test_response_writer_refuses_header_injection() -> None:
    request = SubRequest("GET", "/", (), b"", "<1>")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        ResponseWriter().part(SubResponse(200, "OK", (("X", "a\r\nX-Evil: 1"),), b""), request)


def test_response_writer_refuses_content_id_injection() -> None:
    request = SubRequest("GET", "/", (), b"", "<1>\r\nX-Evil: 1")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        ResponseWriter().part(SubResponse(200, "OK", (), b""), request)


def test_read_responses_google_style() -> None:
    # What Google answers: CRLF, Content-ID <response-X>, a trailing CRLF after each body.
    content_type = "multipart/mixed; boundary=batch_abc"
    body = (
        b"--batch_abc\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-ID: <response-item1>\r\n"
        b"\r\n"
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json; charset=UTF-8\r\n"
        b"Content-Length: 2\r\n"
        b"\r\n"
        b"{}\r\n"
        b"\r\n"
        b"--batch_abc--\r\n"
    )
    assert read_responses(content_type, body) == [
        (
            "<item1>",
            SubResponse(
                200,
                "OK",
                (("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", "2")),
                b"{}",
            ),
        )
    ]


# --------------------------------------------------------------------------------------------
# encode_requests -> RequestReader


def test_encode_requests_exact_bytes() -> None:
    requests = [
        SubRequest("GET", "/a", (("Accept", "*/*"),), b"", "<1>"),
        SubRequest("POST", "Employees", (), b"{}", None),
    ]
    assert encode_requests(requests, "b") == (
        b"--b\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\n"
        b"GET /a HTTP/1.1\r\nAccept: */*\r\n\r\n\r\n"
        b"--b\r\nContent-Type: application/http\r\n\r\n"
        b"POST Employees HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}\r\n"
        b"--b--\r\n"
    )


TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789ABCXYZabcxyz", min_size=1, max_size=10)
REQUESTS = st.lists(
    st.builds(
        SubRequest,
        method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
        target=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
        headers=st.lists(
            st.tuples(
                TOKEN.map(lambda name: "X-" + name),
                st.text(
                    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
                ).map(lambda value: value.strip()),
            ),
            max_size=4,
        ).map(tuple),
        body=st.binary(max_size=200),
        content_id=st.one_of(
            st.none(),
            st.integers(0, 10**6).map(str),
            st.text(
                alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20
            ).map(lambda text: f"<{text} + 1>"),
        ),
        depends_on=st.just(()),
        invalid_reason=st.none(),
        group=st.none(),  # groups go in changesets: tests/test_client_groups_wire.py
    ),
    min_size=1,
    max_size=6,
)


@PROPERTY
@given(requests=REQUESTS, size=st.integers(1, 500))
def test_encode_requests_round_trip(requests: list[SubRequest], size: int) -> None:
    boundary = "round_trip_boundary"
    body = encode_requests(requests, boundary)
    chunks = [body[start : start + size] for start in range(0, len(body), size)]
    read = read_requests(f"multipart/mixed; boundary={boundary}", chunks, LIMITS)
    expected = [
        SubRequest(
            request.method,
            request.target,
            request.headers
            + ((("Content-Length", str(len(request.body))),) if request.body else ()),
            request.body,
            request.content_id,
        )
        for request in requests
    ]
    assert read == expected


@PROPERTY
@given(
    responses=st.lists(
        st.builds(
            SubResponse,
            status=st.integers(100, 599),
            reason=st.sampled_from(["", "OK", "Custom"]),
            headers=st.lists(
                st.tuples(
                    TOKEN.map(lambda name: "X-" + name),
                    st.text(
                        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                        max_size=20,
                    ).map(lambda value: value.strip()),
                ),
                max_size=3,
            ).map(tuple),
            body=st.binary(max_size=200),
        ),
        min_size=1,
        max_size=5,
    ),
    ids=st.lists(st.one_of(st.none(), st.just("7"), st.just("<a b>")), min_size=5, max_size=5),
)
def test_response_writer_round_trip(responses: list[SubResponse], ids: list[str | None]) -> None:
    writer = ResponseWriter()
    requests = [SubRequest("GET", "/", (), b"", ids[index]) for index in range(len(responses))]
    output = write(writer, list(zip(requests, responses, strict=True)))
    read = read_responses(writer.content_type, output)
    assert [content_id for content_id, _ in read] == ids[: len(responses)]
    for (_, got), sent in zip(read, responses, strict=True):
        assert got.status == sent.status
        assert got.headers == (*sent.headers, ("Content-Length", str(len(sent.body))))
        # A 304 keeps the Content-Length of the representation and sends no body.
        assert got.body == (b"" if sent.status == 304 else sent.body)


# --------------------------------------------------------------------------------------------
# Repeated header blocks (one batch reads each distinct block once)


def test_repeated_header_blocks_read_alike_and_a_bad_one_is_still_refused_as_its_part() -> None:
    head = b"Content-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\nAccept: a/b\r\nX-N: 1\r\n\r\n"
    read_twice = read([head, head])
    assert [r.headers for r in read_twice] == [(("Accept", "a/b"), ("X-N", "1"))] * 2
    bad = head.replace(b"X-N: 1", b"X-N 1")
    with pytest.raises(MalformedBatch) as refused:
        read([head, head, bad])
    assert refused.value.part == 3
    # Under a lower limit on fields, the block a batch has read is still counted.
    with pytest.raises(LimitExceeded) as limited:
        read([head, head], Limits(max_headers=1))
    assert limited.value.part == 1
