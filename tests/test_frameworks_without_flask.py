"""The middlewares work where Flask is not installed; the Flask extension says what is missing.

Each check runs in a fresh interpreter in which importing Flask (or Werkzeug) fails, as it
would after ``pip install --no-deps flask-batch`` in a Django or FastAPI project.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_FLASK = """
import sys
sys.modules["flask"] = None  # importing flask now raises ImportError
sys.modules["werkzeug"] = None
sys.modules["blinker"] = None  # it comes with Flask: not there either
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK_FLASK + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_both_middlewares_serve_batches_without_flask() -> None:
    result = _run(
        """
        import asyncio, io

        from flask_batch.asgi import BatchMiddleware as ASGIBatch
        from flask_batch.wsgi import BatchMiddleware as WSGIBatch
        from flask_batch import Limits, SubRequest
        from flask_batch.wire.multipart_answers import read_responses
        from flask_batch.wire.multipart_requests import encode_requests

        body = encode_requests([SubRequest("GET", "/hello", (), b"")], "b")
        content_type = "multipart/mixed; boundary=b"

        def wsgi_app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"wsgi " + environ["PATH_INFO"].encode()]

        answers = []
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/batch", "SERVER_NAME": "localhost",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        }
        started = []
        chunks = WSGIBatch(wsgi_app)(environ, lambda status, headers: started.append(headers))
        answer = b"".join(chunks)
        answers += read_responses(dict(started[0])["Content-Type"], answer)

        async def asgi_app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"asgi " + scope["path"].encode()})

        async def call():
            sent = []
            async def receive():
                return {"type": "http.request", "body": body, "more_body": False}
            async def send(message):
                sent.append(message)
            scope = {"type": "http", "method": "POST", "path": "/batch", "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode())]}
            await ASGIBatch(asgi_app)(scope, receive, send)
            headers = dict(sent[0]["headers"])
            data = b"".join(m.get("body", b"") for m in sent[1:])
            return read_responses(headers[b"content-type"].decode(), data)

        answers += asyncio.run(call())
        print([response.body.decode() for _, response in answers])
        assert "flask" not in [name for name, module in sys.modules.items() if module]
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['wsgi /hello', 'asgi /hello']"


def test_the_flask_extension_says_flask_is_missing() -> None:
    result = _run(
        """
        import flask_batch
        for name in ("add_batch_route", "Batch"):
            try:
                getattr(flask_batch, name)
            except ImportError as error:
                print(error.name, "|", error)
        try:
            from flask_batch import add_batch_route
        except ImportError as error:
            print("from-import", error.name)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("flask | flask_batch.add_batch_route is the Flask extension and ")
    assert "needs Flask (>= 3), which is not installed" in lines[0]
    assert "flask_batch.wsgi.BatchMiddleware (WSGI) or flask_batch.asgi.BatchMiddleware" in lines[0]
    assert lines[1].startswith("flask | flask_batch.Batch is the Flask extension")
    assert lines[2] == "from-import flask"


def test_with_flask_the_public_api_is_unchanged() -> None:
    import flask_batch  # noqa: PLC0415 (the lazy attributes are the subject)
    from flask_batch.flask import Batch, add_batch_route  # noqa: PLC0415

    assert flask_batch.add_batch_route is add_batch_route
    assert flask_batch.Batch is Batch
    assert set(flask_batch.__all__) >= {"Batch", "add_batch_route", "Limits", "BatchError"}


def test_without_blinker_parts_are_logged_and_the_signals_say_what_is_missing() -> None:
    result = _run(
        """
        import io, logging

        from flask_batch.wsgi import BatchMiddleware
        from flask_batch import SubRequest
        from flask_batch.wire.multipart_requests import encode_requests

        logging.basicConfig(level=logging.INFO, format="%(name)s %(status)s")
        body = encode_requests([SubRequest("GET", "/hello", (), b"")], "b")

        def wsgi_app(environ, start_response):
            start_response("204 No Content", [])
            return []

        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/batch", "SERVER_NAME": "localhost",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "multipart/mixed; boundary=b",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        }
        b"".join(BatchMiddleware(wsgi_app)(environ, lambda status, headers: None))
        try:
            import flask_batch.signals
        except ImportError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == "flask_batch.parts 204"
    assert result.stdout.strip() == (
        "flask_batch.signals needs blinker (it comes with Flask): pip install blinker"
    )
