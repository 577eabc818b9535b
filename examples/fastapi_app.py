"""FastAPI + Flask-Batch: a small todo API whose calls can be batched.

    python examples/fastapi_app.py          # uvicorn on http://127.0.0.1:8000
    python examples/fastapi_app.py --demo   # serves on a free port, sends one batch, prints it

The batch endpoint is a pure ASGI middleware::

    app.add_middleware(BatchMiddleware)      # or: app = BatchMiddleware(app)

Each part runs through FastAPI's whole pipeline (middleware, dependencies, validation,
exception handlers, background tasks) as if it had come on its own. Flask is not needed:
``flask_batch.asgi`` does not import it.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations at run time.
import argparse
import socket
import threading
import time
from typing import Annotated

import uvicorn
from batch_demo import TOKEN, curl, show
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel

from flask_batch.asgi import BatchMiddleware


class NewTodo(BaseModel):
    title: str


class Todo(NewTodo):
    id: int


app = FastAPI()
app.add_middleware(BatchMiddleware)  # POST /batch now accepts batches
TODOS: dict[int, Todo] = {}


def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
    if authorization != TOKEN:
        raise HTTPException(401, "a valid bearer token is required")


@app.get("/todos")
async def list_todos() -> list[Todo]:
    return list(TODOS.values())


@app.post("/todos", status_code=201, dependencies=[Depends(authorized)])
async def create_todo(new: NewTodo) -> Todo:
    todo = Todo(id=len(TODOS) + 1, title=new.title)
    TODOS[todo.id] = todo
    return todo


@app.get("/todos/{todo_id}")
async def get_todo(todo_id: int) -> Todo:
    if todo_id not in TODOS:
        raise HTTPException(404, f"no todo {todo_id}")
    return TODOS[todo_id]


@app.delete("/todos/{todo_id}", status_code=204, dependencies=[Depends(authorized)])
async def delete_todo(todo_id: int) -> Response:
    TODOS.pop(todo_id, None)
    return Response(status_code=204)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--demo", action="store_true", help="send one batch and stop")
    options = parser.parse_args()
    if not options.demo:
        print(f"Try:\n  {curl(f'http://127.0.0.1:{options.port}')}")
        uvicorn.run(app, host="127.0.0.1", port=options.port)
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        show(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join()


if __name__ == "__main__":
    main()
