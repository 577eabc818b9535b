"""Flask-Login wired the same way for every test that needs a logged-in user.

Users log in with a session (``login_user``) or with a bearer token (``TOKENS``), so tests
can check that neither identity leaks from one part of a batch into another.
"""

from __future__ import annotations

from collections.abc import Collection

from flask import Flask, request
from flask_login import LoginManager

TOKENS = {"Bearer alice-token": "alice", "Bearer bob-token": "bob"}


class User:
    """What Flask-Login needs of a user (the protocol UserMixin implements)."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, name: str) -> None:
        self.id = name

    def get_id(self) -> str:
        return self.id


def install_login(app: Flask, known: Collection[str] | None = None) -> LoginManager:
    """A LoginManager on ``app`` that loads session users (those in ``known``, or any) and
    bearer-token users (``TOKENS``)."""
    manager = LoginManager(app)

    # Registered by calls rather than as decorators: Flask-Login has no type information.
    def load_user(user_id: str) -> User | None:
        return User(user_id) if known is None or user_id in known else None

    def load_from_header(req: object) -> User | None:
        name = TOKENS.get(request.headers.get("Authorization", ""))
        return User(name) if name else None

    manager.user_loader(load_user)
    manager.request_loader(load_from_header)
    return manager
