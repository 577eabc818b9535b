"""Real databases for the integration tests: a SQLite file, and a database in a throw-away
PostgreSQL cluster.

The cluster is made by ``initdb`` in a temporary directory and served by ``pg_ctl`` on a
free port of 127.0.0.1 (its Unix socket in that directory too), once per test session
(tests/conftest.py), then stopped and removed. PostgreSQL refuses to run as root, so under
root (CI runs as root) the server runs as the ``postgres`` user that Debian's package
makes, or ``nobody``. Without PostgreSQL's programs the tests that need it are skipped, with
the reason, except on CI (``CI`` set), where they fail: there ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest

#: The cluster's superuser (trusted on 127.0.0.1: the cluster lives for one test session).
SUPERUSER = "flask_batch"
#: Settings for a throw-away cluster: nothing is worth an fsync.
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=50",
    "shared_buffers=16MB",
)


#: Where Debian's packages put each major version's programs.
DEBIAN = Path("/usr/lib/postgresql")


class PostgresMissing(Exception):
    """PostgreSQL's programs are not on this machine."""


def give_up(missing: PostgresMissing) -> NoReturn:
    """Skip what needs PostgreSQL, saying why; on CI, which must run it, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"CI needs PostgreSQL: {missing}")
    pytest.skip(str(missing))


def postgres_programs(debian: Path = DEBIAN) -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: ``$PG_BINDIR``, the ``PATH``, or the
    newest of Debian's ``debian``/*/bin."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    on_path = shutil.which("initdb")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    versions = debian.glob("*/bin")
    newest_first = sorted(versions, key=lambda p: _version(p.parent.name), reverse=True)
    candidates += [str(p) for p in newest_first]
    for directory in filter(None, candidates):
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return (Path(directory) / "initdb").resolve().parent
    raise PostgresMissing(
        "PostgreSQL's initdb and pg_ctl were found neither in $PG_BINDIR, on the PATH, nor "
        "in /usr/lib/postgresql/*/bin: install Debian's postgresql package (.ci/run does)"
    )


def _version(name: str) -> list[int]:
    """Debian's directory names: 15, or 9.6 before PostgreSQL 10."""
    return [int(part) for part in name.split(".") if part.isdigit()]


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: ours, unless we are root (which initdb refuses)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresMissing("running as root, and neither a postgres nor a nobody user exists")


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    """A running throw-away cluster."""

    programs: Path
    directory: Path
    port: int
    account: pwd.struct_passwd | None
    #: How long initdb and the start took, for the report of the test session.
    start_seconds: float = 0.0

    def _run(self, *command: str) -> None:
        as_account: dict[str, Any] = {}
        if self.account is not None:
            as_account = {
                "user": self.account.pw_uid,
                "group": self.account.pw_gid,
                "extra_groups": [],
            }
        done = subprocess.run(
            command,
            cwd=self.directory,  # the server's account may not enter ours
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            **as_account,
        )
        if done.returncode:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stderr or done.stdout}\n{tail}")

    @classmethod
    def start(cls) -> PostgresCluster:
        began = time.monotonic()
        programs = postgres_programs()
        account = _server_account()
        directory = Path(tempfile.mkdtemp(prefix="flask-batch-pg-"))
        if account is not None:
            os.chown(directory, account.pw_uid, account.pw_gid)
        cluster = cls(programs, directory, 0, account)
        data = str(directory / "data")
        try:
            cluster._run(
                str(programs / "initdb"), "-D", data, "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
            for attempt in range(5):  # a free port may be taken before the server binds it
                cluster.port = _free_port()
                options = " ".join(
                    [f"-p {cluster.port}", f"-k {directory}"]
                    + [f"-c {setting}" for setting in SERVER_SETTINGS]
                )
                try:
                    cluster._run(
                        str(programs / "pg_ctl"), "-D", data, "-l", str(directory / "server.log"),
                        "-o", options, "-w", "-t", "60", "start",
                    )  # fmt: skip
                    break
                except RuntimeError:
                    if attempt == 4:
                        raise
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        cluster.start_seconds = time.monotonic() - began
        return cluster

    def stop(self) -> None:
        try:
            command = (str(self.programs / "pg_ctl"), "-D", str(self.directory / "data"))
            self._run(*command, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(database), autocommit=True)


_databases = count(1)


@dataclass
class Database:
    """One test's own database, SQLite or PostgreSQL, reached by every library the
    integrations speak to, and queried apart from them (a connection of its own)."""

    kind: str
    #: SQLite's file, or PostgreSQL's database name.
    name: str
    cluster: PostgresCluster | None = None

    @property
    def url(self) -> str:
        """For SQLAlchemy (and Flask-SQLAlchemy)."""
        if self.cluster is None:
            return f"sqlite:///{self.name}"
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.cluster.port}/{self.name}"

    @property
    def async_url(self) -> str:
        """For SQLAlchemy's asyncio engines."""
        if self.cluster is None:
            return f"sqlite+aiosqlite:///{self.name}"
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.cluster.port}/{self.name}"

    @property
    def django(self) -> dict[str, Any]:
        """For Django's ``DATABASES``."""
        if self.cluster is None:
            return {"ENGINE": "django.db.backends.sqlite3", "NAME": self.name}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.name,
            "USER": SUPERUSER,
            "HOST": "127.0.0.1",
            "PORT": str(self.cluster.port),
        }

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.cluster is None:
            with closing(sqlite3.connect(self.name, isolation_level=None)) as sqlite:
                yield sqlite
        else:
            with self.cluster.connect(self.name) as postgres:
                yield postgres

    def execute(self, script: str) -> None:
        """Run ``script`` (statements separated by ``;``), committed."""
        with self._connection() as connection:
            for statement in filter(str.strip, script.split(";")):
                connection.execute(statement)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """What ``query`` finds, as committed now."""
        with self._connection() as connection:
            return [tuple(row) for row in connection.execute(query).fetchall()]

    def open_transactions(self) -> int:
        """How many transactions are open on the database, left by a connection that was
        not given back clean (PostgreSQL: sessions idle in a transaction; SQLite: a lock
        that refuses a write)."""
        if self.cluster is not None:
            found = self.rows(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
                f" AND datname = '{self.name}'"
            )
            return int(found[0][0])
        with closing(sqlite3.connect(self.name, timeout=0, isolation_level=None)) as sqlite:
            try:
                sqlite.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return 1
            sqlite.execute("ROLLBACK")
            return 0


@contextmanager
def new_database(kind: str, directory: Path, cluster: PostgresCluster | None) -> Iterator[Database]:
    """A new, empty database of ``kind``, dropped after the test."""
    if kind == "sqlite":
        yield Database(kind, str(directory / "test.sqlite3"))
        return
    assert cluster is not None
    name = f"test_{os.getpid()}_{next(_databases)}"
    with cluster.connect() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield Database(kind, name, cluster)
    finally:
        with cluster.connect() as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
