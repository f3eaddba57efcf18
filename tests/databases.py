"""Database helpers shared by test suites; the fixtures that build them are in tests/conftest.py."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass
class PostgresServer:
    """The session's PostgreSQL test database and the admin operations tests need on it."""

    admin_url: str  # a database on the same server to connect to while the test one is reset
    url: str  # Keel URL of the test database
    database: str

    def connect(self, *, admin: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the test database (or to the admin database)."""
        return psycopg.connect(self.admin_url if admin else self.url, autocommit=True, connect_timeout=5)

    def terminate_connections(self) -> int:
        """Kill every other connection to the test database, as a crashed server or DBA would."""
        with self.connect(admin=True) as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,),
            ).fetchall()
        return len(rows)

    def allow_connections(self, allowed: bool) -> None:
        """Let new connections in, or refuse them (existing ones are unaffected; kill them too)."""
        with self.connect(admin=True) as connection:
            connection.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(self.database), sql.SQL("true" if allowed else "false")
                )
            )

    def reset(self) -> None:
        """Empty the test database: drop and recreate the public schema, drop DBOS's schema."""
        self.allow_connections(True)
        self.terminate_connections()
        with self.connect() as connection:
            connection.execute("SET lock_timeout = '10s'")
            connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
            connection.execute("DROP SCHEMA IF EXISTS dbos CASCADE")  # durable runs (keel.durable)
            connection.execute("CREATE SCHEMA public")
