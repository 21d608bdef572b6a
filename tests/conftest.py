"""Fixtures shared across the test tree: a real PostgreSQL and a real S3 server on loopback.

- `pg_url`: the PostgreSQL test database (LOOKALIKE_TEST_PG_URL, default
  postgresql://root@127.0.0.1:5432/test); the test is skipped when none answers.
- `pg_schema`: a fresh schema name for one test, dropped with all its tables afterwards; pass it
  as `open_state(pg_url, schema=pg_schema)`.
- `s3_server`: the endpoint (http://127.0.0.1:PORT) of moto's S3 server, started once per session
  in this process; any access and secret key are accepted. Use a bucket of your own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def pg_url() -> str:
    psycopg = pytest.importorskip("psycopg")
    url = os.environ.get("LOOKALIKE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test against PostgreSQL, and none answers at {url}: {exc}")
        pytest.skip(f"no PostgreSQL at {url} ({exc}); set LOOKALIKE_TEST_PG_URL to one")
    return url


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
