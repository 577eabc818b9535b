"""The real databases the integration tests use (tests/databases.py): the throw-away
PostgreSQL cluster, each test's own database, and the checks the tests rely on."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from .databases import Database, PostgresCluster, PostgresMissing, give_up, postgres_programs


def test_the_cluster_serves_on_loopback_from_its_own_directory(
    postgres_cluster: PostgresCluster,
) -> None:
    assert any(postgres_cluster.directory.glob(f".s.PGSQL.{postgres_cluster.port}"))
    if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as another account
        assert postgres_cluster.account is not None
        assert postgres_cluster.directory.stat().st_uid == postgres_cluster.account.pw_uid
    with postgres_cluster.connect() as connection:
        found = connection.execute("SHOW listen_addresses").fetchone()
    assert found == ("127.0.0.1",)


def test_each_test_has_a_database_of_its_own(database: Database) -> None:
    database.execute("CREATE TABLE mine (x INTEGER)")
    assert database.rows("SELECT count(*) FROM mine") == [(0,)]


def test_an_open_transaction_is_seen(database: Database) -> None:
    database.execute("CREATE TABLE mine (x INTEGER)")
    assert database.open_transactions() == 0
    if database.cluster is None:
        with sqlite3.connect(database.name, isolation_level=None) as holder:
            holder.execute("BEGIN IMMEDIATE")
            assert database.open_transactions() == 1
            holder.execute("ROLLBACK")
    else:
        with database.cluster.connect(database.name) as holder:
            holder.execute("BEGIN")
            holder.execute("INSERT INTO mine VALUES (1)")
            assert database.open_transactions() == 1
            holder.execute("ROLLBACK")
    assert database.open_transactions() == 0


def test_without_postgresql_the_tests_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PG_BINDIR", raising=False)
    with pytest.raises(PostgresMissing, match="install Debian's postgresql package") as missing:
        postgres_programs(debian=tmp_path)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        give_up(missing.value)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs PostgreSQL"):
        give_up(missing.value)


def test_the_newest_of_debians_versions_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PG_BINDIR", raising=False)
    for version in ("9.6", "15", "13"):
        programs = tmp_path / version / "bin"
        programs.mkdir(parents=True)
        for name in ("initdb", "pg_ctl"):
            (programs / name).write_text("#!/bin/sh\n")
            (programs / name).chmod(stat.S_IRWXU)
    assert postgres_programs(debian=tmp_path) == tmp_path / "15" / "bin"
