"""Transactions for atomic groups, one module per database library.

Each module imports its library, so each comes with its own extra (docs/atomic-groups.md,
"Transactions for atomic groups"); importing this package imports none of them. Nothing in
the rest of the package imports an integration (tests/test_layers.py).

- :mod:`flask_batch.integrations.sqlalchemy`: SQLAlchemy 2 sessions (``scoped_session``,
  ``sessionmaker``);
- :mod:`flask_batch.integrations.flask_sqlalchemy`: Flask-SQLAlchemy 3.1's ``db.session``;
- :mod:`flask_batch.integrations.sqlalchemy_asyncio`: SQLAlchemy's ``AsyncSession``;
- :mod:`flask_batch.integrations.django`: Django's ``transaction.atomic``.
"""

__all__: list[str] = []
