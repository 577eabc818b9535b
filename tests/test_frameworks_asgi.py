"""FastAPI, Starlette, Quart and Litestar behind flask_batch.asgi.BatchMiddleware.

Each part runs through the framework's whole pipeline (middleware, dependencies, guards,
validation, exception handlers, background tasks), with its own scope, so what a part
carries decides how it is judged: the batch's credentials unless it brings its own.
"""

# No ``from __future__ import annotations``: FastAPI and Litestar read these annotations at
# run time, some of them naming functions local to the app factories.
import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import quart
from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from litestar import Litestar, get, post
from litestar import Request as LitestarRequest
from litestar import Response as LitestarResponse
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
    UnauthenticatedUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route

from flask_batch.asgi import BatchMiddleware
from flask_batch.wire.model import SubResponse

from .frameworks.driving import batch, lifespan, part_header, part_json, request, run, sub

TOKENS = {"Bearer alice-token": "alice", "Bearer bob-token": "bob"}
ALICE = [("Authorization", "Bearer alice-token")]
JSON_TYPE = ("Content-Type", "application/json")


def _statuses(answers: list[SubResponse]) -> list[int]:
    return [a.status for a in answers]


def _cookie(response: SubResponse, name: str) -> str | None:
    for key, value in response.headers:
        if key.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.partition(";")[0]
    return None


# --------------------------------------------------------------------------------------
# FastAPI: dependencies, auth dependencies, validation, exception handlers, background tasks
# --------------------------------------------------------------------------------------


class Todo(BaseModel):
    title: str
    done: bool = False


class Teapot(Exception):
    pass


@dataclass
class Recorder:
    events: list[str] = field(default_factory=list)
    running: int = 0
    most_running: int = 0


def fastapi_app(recorder: Recorder) -> FastAPI:
    events = recorder.events

    @asynccontextmanager
    async def life(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"db": "the database"}

    app = FastAPI(lifespan=life)

    async def session() -> AsyncIterator[int]:
        number = sum(1 for e in events if e.startswith("open"))
        events.append(f"open {number}")
        try:
            yield number
        finally:
            events.append(f"close {number}")

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        user = TOKENS.get(authorization or "")
        if user is None:
            raise HTTPException(401, "who are you?", headers={"WWW-Authenticate": "Bearer"})
        return user

    @app.exception_handler(Teapot)
    async def teapot(request: Request, error: Teapot) -> JSONResponse:
        return JSONResponse({"teapot": str(error)}, status_code=418)

    @app.middleware("http")
    async def tag(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["X-Tag"] = request.url.path
        return response

    @app.get("/me")
    async def me(user: Annotated[str, Depends(current_user)], request: Request) -> dict[str, Any]:
        return {"user": user, "db": request.state.db, "app": request.app.title}

    @app.post("/todos", status_code=201)
    async def create(
        todo: Todo,
        user: Annotated[str, Depends(current_user)],
        number: Annotated[int, Depends(session)],
        tasks: BackgroundTasks,
    ) -> dict[str, Any]:
        tasks.add_task(events.append, f"notify {user}: {todo.title}")
        return {"todo": todo.model_dump(), "session": number}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:  # a sync endpoint: FastAPI's thread pool
        return {"item": item_id}

    @app.get("/teapot")
    async def brew() -> None:
        raise Teapot("short and stout")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the endpoint failed")

    @app.get("/sleep/{name}")
    async def sleep(name: str) -> dict[str, str]:
        recorder.running += 1
        recorder.most_running = max(recorder.most_running, recorder.running)
        await asyncio.sleep(0.03)
        recorder.running -= 1
        events.append(f"slept {name}")
        return {"name": name}

    return app


def test_fastapi_judges_and_handles_every_part_on_its_own() -> None:
    recorder = Recorder()
    app = BatchMiddleware(fastapi_app(recorder))
    parts = [
        sub("GET", "/me"),
        sub("GET", "/me", headers=(("Authorization", "Bearer bob-token"),)),
        sub("GET", "/me", headers=(("Authorization", "Bearer forged"),)),
        sub("POST", "/todos", b'{"title": "milk"}', (JSON_TYPE,)),
        sub("POST", "/todos", b'{"done": "maybe"}', (JSON_TYPE,)),
        sub("GET", "/items/41"),
        sub("GET", "/items/abc"),
        sub("GET", "/teapot"),
        sub("GET", "/boom"),
        sub("GET", "/nowhere"),
    ]

    async def scenario() -> list[SubResponse]:
        async with lifespan(app) as state:
            return await batch(app, *parts, headers=ALICE, state=state)

    answers = run(scenario())
    assert _statuses(answers) == [200, 200, 401, 201, 422, 200, 422, 418, 500, 404]
    assert part_json(answers[0]) == {"user": "alice", "db": "the database", "app": "FastAPI"}
    assert part_json(answers[1])["user"] == "bob"
    assert part_header(answers[2], "WWW-Authenticate") == "Bearer"
    assert part_json(answers[3]) == {"todo": {"title": "milk", "done": False}, "session": 0}
    assert part_json(answers[4])["detail"][0]["loc"] == ["body", "title"]
    assert part_json(answers[5]) == {"item": 41}
    assert part_json(answers[7]) == {"teapot": "short and stout"}
    assert [part_header(a, "X-Tag") for a in answers[:8]] == [
        "/me",
        "/me",
        "/me",
        "/todos",
        "/todos",
        "/items/41",
        "/items/abc",
        "/teapot",
    ]
    # Each todo part had its own session dependency, closed after its answer; the valid
    # one's background task ran after its answer too, and before the batch request ended.
    events = recorder.events
    assert sorted(events) == ["close 0", "close 1", "notify alice: milk", "open 0", "open 1"]
    assert events.index("open 0") < events.index("notify alice: milk") < events.index("close 0")


def test_fastapi_add_middleware_and_concurrent_parts() -> None:
    recorder = Recorder()
    api = fastapi_app(recorder)
    api.add_middleware(BatchMiddleware, max_workers=4)
    parts = [sub("GET", f"/sleep/{n}") for n in "abcdef"] + [sub("GET", "/me")]

    async def scenario() -> list[SubResponse]:
        async with lifespan(api) as state:
            return await batch(api, *parts, headers=ALICE, state=state)

    answers = run(scenario())
    assert [part_json(a).get("name") for a in answers[:6]] == list("abcdef")
    assert recorder.most_running == 4
    assert part_json(answers[6]) == {"user": "alice", "db": "the database", "app": "FastAPI"}


# --------------------------------------------------------------------------------------
# Starlette: sessions, authentication middleware, mounted apps, streaming
# --------------------------------------------------------------------------------------


class TokenBackend(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        user = TOKENS.get(conn.headers.get("Authorization", ""))
        if user is None:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(user)


async def whoami(request: StarletteRequest) -> Response:
    user = request.user
    name = None if isinstance(user, UnauthenticatedUser) else user.display_name
    return StarletteJSON({"user": name, "cart": request.session.get("cart", [])})


async def add_to_cart(request: StarletteRequest) -> Response:
    item = (await request.json())["item"]
    request.session["cart"] = [*request.session.get("cart", []), item]
    return StarletteJSON(request.session["cart"], status_code=201)


async def stream(request: StarletteRequest) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for word in (b"one ", b"two ", b"three"):
            await asyncio.sleep(0)
            yield word

    return StreamingResponse(chunks(), media_type="text/plain")


async def inner_root(request: StarletteRequest) -> Response:
    return StarletteJSON({"root_path": request.scope["root_path"], "path": request.url.path})


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/cart", add_to_cart, methods=["POST"]),
            Route("/stream", stream),
            Mount("/shop", routes=[Route("/{rest:path}", inner_root)]),
        ],
        middleware=[
            Middleware(SessionMiddleware, secret_key="starlette-tests"),
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
        ],
    )


def test_starlette_sessions_and_authentication_per_part() -> None:
    app = BatchMiddleware(starlette_app())

    async def scenario() -> tuple[list[SubResponse], list[SubResponse]]:
        first = await batch(
            app,
            sub("POST", "/cart", b'{"item": "milk"}', (JSON_TYPE,)),
            sub("GET", "/whoami"),
            headers=ALICE,
        )
        session = _cookie(first[0], "session")
        assert session is not None
        second = await batch(
            app,
            sub("GET", "/whoami"),
            sub("GET", "/whoami", headers=(("Cookie", "session=forged"),)),
            sub("GET", "/whoami", headers=(("Authorization", "Bearer bob-token"),)),
            sub("GET", "/stream"),
            sub("GET", "/shop/a%2Fb?x=1"),
            headers=[("Cookie", session)],
        )
        return first, second

    first, second = run(scenario())
    assert _statuses(first) == [201, 200]
    assert part_json(first[1]) == {"user": "alice", "cart": []}  # the cookie was not shared
    assert part_json(second[0]) == {"user": None, "cart": ["milk"]}  # the batch's session
    assert part_json(second[1]) == {"user": None, "cart": []}  # its own (forged) cookie
    assert part_json(second[2]) == {"user": "bob", "cart": ["milk"]}
    assert second[3].body == b"one two three"
    assert part_json(second[4]) == {"root_path": "/shop", "path": "/shop/a/b"}


# --------------------------------------------------------------------------------------
# Quart: before_request, g, sessions, error handlers
# --------------------------------------------------------------------------------------


def quart_app(seen: list[str]) -> quart.Quart:
    app = quart.Quart(__name__)
    app.secret_key = "quart-tests"

    @app.before_request
    async def identify() -> None:
        seen.append(quart.request.path)
        quart.g.user = TOKENS.get(quart.request.headers.get("Authorization", ""))

    @app.get("/me")
    async def me() -> dict[str, Any]:
        if quart.g.user is None:
            quart.abort(401)
        visits = quart.session.get("visits", 0) + 1
        quart.session["visits"] = visits
        return {"user": quart.g.user, "visits": visits, "g": sorted(vars(quart.g))}

    @app.post("/echo/<name>")
    async def echo(name: str) -> dict[str, Any]:
        return {"name": name, "json": await quart.request.get_json()}

    @app.errorhandler(401)
    async def unauthorized(error: Exception) -> tuple[dict[str, str], int]:
        return {"error": "log in"}, 401

    return app


def test_quart_hooks_g_and_sessions_per_part() -> None:
    seen: list[str] = []
    app = quart_app(seen)
    app.asgi_app = BatchMiddleware(app.asgi_app)  # type: ignore[method-assign,assignment]

    async def scenario() -> list[SubResponse]:
        async with lifespan(app):
            return await batch(
                app,
                sub("GET", "/me"),
                sub("GET", "/me"),
                sub("GET", "/me", headers=(("Authorization", "Bearer nobody"),)),
                sub("POST", "/echo/z%C3%BC", b'{"a": [1]}', (JSON_TYPE,)),
                headers=ALICE,
            )

    answers = run(scenario())
    assert _statuses(answers) == [200, 200, 401, 200]
    # No cookie jar between parts: each part starts from the batch's (empty) session.
    assert part_json(answers[0]) == {"user": "alice", "visits": 1, "g": ["user"]}
    assert part_json(answers[1]) == {"user": "alice", "visits": 1, "g": ["user"]}
    assert _cookie(answers[0], "session") is not None
    assert part_json(answers[2]) == {"error": "log in"}
    assert part_json(answers[3]) == {"name": "zü", "json": {"a": [1]}}
    assert seen == ["/me", "/me", "/me", "/echo/zü"]


# --------------------------------------------------------------------------------------
# Litestar: guards, dependencies, validation, exception handlers
# --------------------------------------------------------------------------------------


def _guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if connection.headers.get("Authorization") not in TOKENS:
        raise NotAuthorizedException("a token is required")


def _user(request: LitestarRequest[Any, Any, Any]) -> str:
    return TOKENS.get(request.headers.get("Authorization", ""), "anonymous")


@dataclass
class Pet:
    name: str
    age: int


class Sulk(Exception):
    pass


@get(
    "/pets/{pet_id:int}",
    guards=[_guard],
    dependencies={"user": Provide(_user, sync_to_thread=False)},
)
async def get_pet(pet_id: FromPath[int], user: NamedDependency[str]) -> dict[str, Any]:
    if pet_id == 13:
        raise Sulk("not today")
    return {"pet": pet_id, "owner": user}


@post("/pets", guards=[_guard])
async def create_pet(data: JSONBody[Pet]) -> Pet:
    return data


def _sulk(request: LitestarRequest[Any, Any, Any], error: Sulk) -> LitestarResponse[Any]:
    return LitestarResponse({"sulking": str(error)}, status_code=409)


def test_litestar_guards_dependencies_and_handlers_per_part() -> None:
    app = BatchMiddleware(
        Litestar([get_pet, create_pet], exception_handlers={Sulk: _sulk}, debug=False)
    )

    async def scenario() -> list[SubResponse]:
        async with lifespan(app):
            return await batch(
                app,
                sub("GET", "/pets/1"),
                sub("GET", "/pets/1", headers=(("Authorization", "Bearer bob-token"),)),
                sub("GET", "/pets/1", headers=(("Authorization", "nope"),)),
                sub("GET", "/pets/13"),
                sub("POST", "/pets", b'{"name": "Rex", "age": 3}', (JSON_TYPE,)),
                sub("POST", "/pets", b'{"name": "Rex"}', (JSON_TYPE,)),
                headers=ALICE,
            )

    answers = run(scenario())
    assert _statuses(answers) == [200, 200, 401, 409, 201, 400]
    assert part_json(answers[0]) == {"pet": 1, "owner": "alice"}
    assert part_json(answers[1]) == {"pet": 1, "owner": "bob"}
    assert part_json(answers[3]) == {"sulking": "not today"}
    assert part_json(answers[4]) == {"name": "Rex", "age": 3}


def test_a_framework_app_still_answers_its_own_requests() -> None:
    app = BatchMiddleware(starlette_app())
    answer = run(request(app, "GET", "/whoami", headers=ALICE))
    assert json.loads(answer.body) == {"user": "alice", "cart": []}
