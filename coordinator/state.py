"""The cluster state store: projects, versioned documents, jobs, attempts, nodes.

One interface (`StateStore`) over two backends picked by URL in `open_state`:

    sqlite:///abs/path.db          embedded mode: WAL journal, busy timeout, one connection per
                                   thread, writes in BEGIN IMMEDIATE transactions, so it is safe
                                   across threads and across processes on one machine
    postgresql://user@host:5432/db cluster mode (psycopg 3), one connection per thread; an optional
                                   `schema=` keeps the tables in a schema of their own

Every value goes through bound parameters; the SQL text never holds data. Timestamps are UTC epoch
floats from the store's clock (injectable, so tests can age attempts without sleeping).

Fencing (see DESIGN.md, "Jobs, attempts, segments"): every run of a job is an `Attempt` with its own
id and the job records its `current_attempt_id`. `finish_attempt` promotes a result with one
conditional UPDATE (job running, this attempt current, nothing promoted yet) inside a transaction,
so of any number of concurrent finishers at most one promotes; a late or duplicate attempt changes
nothing but its own record.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from lookalike.errors import ConfigError, InputError, JobError, NotFoundError, StoreError

__all__ = [
    "JOB_TRANSITIONS",
    "SCHEMA_VERSION",
    "Attempt",
    "AttemptState",
    "Job",
    "JobState",
    "NodeRecord",
    "Project",
    "ProjectState",
    "StateStore",
    "open_state",
]

SCHEMA_VERSION = 1


class ProjectState(str, Enum):
    CREATED = "created"
    ANALYZING = "analyzing"
    PLANNED = "planned"
    RENDERING = "rendering"
    ASSEMBLING = "assembling"
    SCORING = "scoring"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED_PROJECT_STATES


_FINISHED_PROJECT_STATES = frozenset({ProjectState.DONE, ProjectState.FAILED, ProjectState.CANCELLED})


class JobState(str, Enum):
    """A job's life. `dead`: its attempts failed past the retry budget, or failed permanently.
    `failed`: the coordinator failed it itself, without an attempt (a bad spec, a failed upstream)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return not JOB_TRANSITIONS[self]


JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.QUEUED, JobState.FAILED, JobState.DEAD, JobState.CANCELLED}
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.DEAD: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class AttemptState(str, Enum):
    """`late`: finished after its job moved on (not current, or already promoted): never promoted.
    `lost`: its node vanished or it ran too long; the job was queued again without it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LATE = "late"
    LOST = "lost"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Project:
    id: str
    tenant: str
    name: str
    options: dict[str, Any]
    state: ProjectState
    stage: str | None
    progress: float | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Job:
    id: str
    project_id: str
    kind: str
    scene_index: int | None
    start_frame: int | None
    end_frame: int | None
    spec: dict[str, Any]
    state: JobState
    attempts_used: int
    max_attempts: int
    current_attempt_id: str | None
    promoted_attempt_id: str | None
    output_key: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Attempt:
    """One run of a job; `number` counts the job's attempts from 1."""

    id: str
    job_id: str
    number: int
    node_id: str
    state: AttemptState
    started_at: float
    finished_at: float | None
    output_key: str | None
    result: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class NodeRecord:
    id: str
    address: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    registered_at: float = 0.0
    last_heartbeat: float = 0.0


# --------------------------------------------------------------------------------------------------
# Schema. Written once in the SQL both SQLite and PostgreSQL accept; JSON is stored as text so the
# documents read back byte-for-byte the same on both.

_SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS projects (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        options TEXT NOT NULL,
        state TEXT NOT NULL,
        stage TEXT,
        progress DOUBLE PRECISION,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS projects_tenant ON projects (tenant, created_at)",
    "CREATE INDEX IF NOT EXISTS projects_state ON projects (state)",
    """CREATE TABLE IF NOT EXISTS documents (
        project_id TEXT NOT NULL REFERENCES projects (id),
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (project_id, kind, version))""",
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects (id),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        scene_index INTEGER,
        start_frame INTEGER,
        end_frame INTEGER,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts_used INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        current_attempt_id TEXT,
        promoted_attempt_id TEXT,
        output_key TEXT,
        result TEXT,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS jobs_project ON jobs (project_id, seq)",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state)",
    """CREATE TABLE IF NOT EXISTS attempts (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs (id),
        number INTEGER NOT NULL,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        output_key TEXT,
        result TEXT,
        error TEXT)""",
    "CREATE INDEX IF NOT EXISTS attempts_job ON attempts (job_id, number)",
    "CREATE INDEX IF NOT EXISTS attempts_node ON attempts (node_id, state)",
    """CREATE TABLE IF NOT EXISTS nodes (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        capabilities TEXT NOT NULL,
        registered_at DOUBLE PRECISION NOT NULL,
        last_heartbeat DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS node_failures (
        node_id TEXT NOT NULL,
        job_kind TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (node_id, job_kind))""",
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1}

_PROJECT_COLS = "id, tenant, name, options, state, stage, progress, error, created_at, updated_at"
_JOB_COLS = (
    "id, project_id, kind, scene_index, start_frame, end_frame, spec, state, attempts_used, "
    "max_attempts, current_attempt_id, promoted_attempt_id, output_key, result, error, created_at, updated_at"
)
_ATTEMPT_COLS = "id, job_id, number, node_id, state, started_at, finished_at, output_key, result, error"
_NODE_COLS = "id, address, capabilities, registered_at, last_heartbeat"

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# --------------------------------------------------------------------------------------------------
# Backends: connections, placeholders and transactions; the SQL itself lives in StateStore.


class _Tx:
    """One open transaction: `execute` returns the rows (if any) and keeps the row count."""

    def __init__(self, cursor: Any, paramstyle_qmark: bool, for_update: str) -> None:
        self._cursor = cursor
        self._qmark = paramstyle_qmark
        self.for_update = for_update
        self.rowcount = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self._qmark:
            sql = sql.replace("?", "%s")
        self._cursor.execute(sql, tuple(params))
        self.rowcount = self._cursor.rowcount
        if self._cursor.description is None:
            return []
        return list(self._cursor.fetchall())


class _Backend:
    url: str
    #: appended to a SELECT that must lock the rows it reads until the transaction ends
    for_update: str = ""

    def transaction(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _SqliteBackend(_Backend):
    """One connection per thread. Writers take the database lock at BEGIN (IMMEDIATE), so a read
    inside a write transaction can never be made stale by another writer in between."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.url = f"sqlite:///{path}"
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder for the state database {path}: {exc}",
                hint="check the path in the state URL and that the folder is writable",
            ) from exc

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: autocommit, so the module never opens transactions behind our back.
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        try:
            conn = self._connection()
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(self.url, exc) from exc
        try:
            yield _Tx(cursor, True, self.for_update)
        except sqlite3.Error as exc:
            conn.rollback()
            raise _store_error(self.url, exc) from exc
        except BaseException:
            conn.rollback()
            raise
        try:
            conn.commit()
        except sqlite3.Error as exc:
            conn.rollback()
            raise _store_error(self.url, exc) from exc

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


class _PostgresBackend(_Backend):
    """One connection per thread (psycopg serializes the calls on one connection); autocommit
    with explicit transactions; an optional private schema via search_path."""

    for_update = " FOR UPDATE"

    def __init__(self, url: str, schema: str | None, connect_timeout_s: float) -> None:
        self.url = url
        self._schema = schema
        self._schema_ready = False
        self._connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []

    def _connection(self) -> Any:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s))
            )
            if self._schema is not None:
                from psycopg import sql

                name = sql.Identifier(self._schema)
                if not self._schema_ready:
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
                    self._schema_ready = True
                conn.execute(sql.SQL("SET search_path TO {}").format(name))
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        import psycopg

        try:
            conn = self._connection()
        except psycopg.Error as exc:
            raise _store_error(self.url, exc) from exc
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield _Tx(cursor, False, self.for_update)
        except psycopg.Error as exc:
            raise _store_error(self.url, exc) from exc

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _store_error(url: str, exc: Exception) -> StoreError:
    return StoreError(
        f"the state store {_redact(url)} failed: {type(exc).__name__}: {exc}",
        hint="check that the database is reachable, writable and not full",
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# --------------------------------------------------------------------------------------------------


def open_state(
    url: str,
    *,
    schema: str | None = None,
    clock: Callable[[], float] = time.time,
    timeout_s: float = 30.0,
) -> StateStore:
    """Open (and create or upgrade the schema of) the state store at `url`.

    `sqlite:///abs/path.db` or `postgresql://user@host:port/db`. `schema` (PostgreSQL only) keeps
    the tables in a schema of their own, created if absent. `clock` gives UTC epoch seconds.
    `timeout_s` bounds waiting for a lock (SQLite) or a connection (PostgreSQL).
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if schema is not None:
            raise ConfigError("schema= applies to PostgreSQL only", hint="drop schema= for a sqlite URL")
        raw = unquote(parts.path)
        if parts.netloc or not raw.startswith("/"):
            raise ConfigError(
                f"the SQLite state URL {url!r} needs an absolute path",
                hint="write it as sqlite:///abs/path/state.db (three slashes)",
            )
        backend: _Backend = _SqliteBackend(Path(raw), timeout_s)
    elif parts.scheme in ("postgresql", "postgres"):
        # `?schema=NAME` in the URL keeps a farm's tables in a schema of its own (the CLI's --db).
        query = dict(parse_qsl(parts.query))
        if "schema" in query:
            schema = schema or query.pop("schema")
            url = urlunsplit(parts._replace(query=urlencode(query)))
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"schema {schema!r} is not a plain lower-case SQL name",
                hint="use letters, digits and underscores, starting with a letter",
            )
        backend = _PostgresBackend(url, schema, timeout_s)
    else:
        raise ConfigError(
            f"unsupported state store URL {_redact(url)!r}",
            hint="use sqlite:///abs/path.db or postgresql://user@host:port/db",
        )
    store = StateStore(backend, clock)
    try:
        store._migrate()
    except BaseException:
        backend.close()
        raise
    return store


class StateStore:
    """Projects, documents, jobs, attempts and nodes; every method is one transaction."""

    def __init__(self, backend: _Backend, clock: Callable[[], float]) -> None:
        self._db = backend
        self._clock = clock

    @property
    def url(self) -> str:
        return _redact(self._db.url)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        with self._db.transaction() as tx:
            rows = tx.execute("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)

    def _migrate(self) -> None:
        with self._db.transaction() as tx:
            if self._db.for_update:
                # Serializes concurrent first openers on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
                tx.execute("SELECT pg_advisory_xact_lock(?)", (0x100CA1,))
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = int(tx.execute("SELECT MAX(version) FROM schema_version")[0][0] or 0)
            if current > SCHEMA_VERSION:
                raise ConfigError(
                    f"the state store {self.url} has schema version {current}, newer than this "
                    f"Lookalike understands ({SCHEMA_VERSION})",
                    hint="upgrade Lookalike, or point it at another database",
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, self._clock())
                )

    # ---- projects ---------------------------------------------------------------------------------

    def create_project(self, tenant: str, name: str, options: Mapping[str, Any]) -> Project:
        now = self._clock()
        project = Project(
            id=uuid.uuid4().hex,
            tenant=tenant,
            name=name,
            options=json.loads(_dumps(options, "project options")),
            state=ProjectState.CREATED,
            stage=None,
            progress=None,
            error=None,
            created_at=now,
            updated_at=now,
        )
        with self._db.transaction() as tx:
            tx.execute(
                f"INSERT INTO projects ({_PROJECT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project.id,
                    tenant,
                    name,
                    _dumps(options, "project options"),
                    project.state.value,
                    None,
                    None,
                    None,
                    now,
                    now,
                ),
            )
        return project

    def get_project(self, project_id: str) -> Project:
        with self._db.transaction() as tx:
            return self._project(tx, project_id)

    def list_projects(self, tenant: str) -> list[Project]:
        with self._db.transaction() as tx:
            rows = tx.execute(
                f"SELECT {_PROJECT_COLS} FROM projects WHERE tenant = ? ORDER BY created_at, id", (tenant,)
            )
        return [_project_from_row(r) for r in rows]

    def all_project_options(self) -> list[dict[str, Any]]:
        """Every project's options, any tenant (what the upload sweeper must keep)."""
        with self._db.transaction() as tx:
            rows = tx.execute("SELECT options FROM projects")
        return [json.loads(r[0]) for r in rows]

    def unfinished_projects(self) -> list[Project]:
        """Projects to resume after a restart: every one not done, failed or cancelled."""
        finished = [s.value for s in _FINISHED_PROJECT_STATES]
        with self._db.transaction() as tx:
            rows = tx.execute(
                f"SELECT {_PROJECT_COLS} FROM projects WHERE state NOT IN (?, ?, ?) ORDER BY created_at, id",
                finished,
            )
        return [_project_from_row(r) for r in rows]

    def set_project_state(
        self,
        project_id: str,
        state: ProjectState | str,
        error: str | None = None,
        stage: str | None = None,
        progress: float | None = None,
    ) -> Project:
        """Move a project to `state`; `error` is replaced, `stage` and `progress` kept when None."""
        target: ProjectState = _enum(ProjectState, state)
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE projects SET state = ?, error = ?, stage = COALESCE(?, stage), "
                "progress = COALESCE(?, progress), updated_at = ? WHERE id = ?",
                (target.value, error, stage, progress, self._clock(), project_id),
            )
            if tx.rowcount == 0:
                raise _no_project(project_id)
            return self._project(tx, project_id)

    def cancel_project(self, project_id: str) -> Project:
        """Cancel the queued and running jobs of a project, and the project unless it already finished.

        Running attempts are marked cancelled; when their nodes report back, nothing is promoted."""
        now = self._clock()
        with self._db.transaction() as tx:
            project = self._project(tx, project_id, lock=True)
            tx.execute(
                "UPDATE attempts SET state = ?, finished_at = ? WHERE state = ? AND id IN "
                "(SELECT current_attempt_id FROM jobs WHERE project_id = ? AND state = ?)",
                (AttemptState.CANCELLED.value, now, AttemptState.RUNNING.value, project_id, "running"),
            )
            tx.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE project_id = ? AND state IN (?, ?)",
                (JobState.CANCELLED.value, now, project_id, JobState.QUEUED.value, JobState.RUNNING.value),
            )
            if not project.state.finished:
                tx.execute(
                    "UPDATE projects SET state = ?, updated_at = ? WHERE id = ?",
                    (ProjectState.CANCELLED.value, now, project_id),
                )
            return self._project(tx, project_id)

    def _project(self, tx: _Tx, project_id: str, *, lock: bool = False) -> Project:
        rows = tx.execute(
            f"SELECT {_PROJECT_COLS} FROM projects WHERE id = ?" + (tx.for_update if lock else ""),
            (project_id,),
        )
        if not rows:
            raise _no_project(project_id)
        return _project_from_row(rows[0])

    # ---- documents --------------------------------------------------------------------------------

    def put_document(self, project_id: str, kind: str, doc: Mapping[str, Any]) -> int:
        """Store `doc` as the next version (1, 2, ...) of the project's `kind` document."""
        text = _dumps(doc, f"the {kind} document")
        with self._db.transaction() as tx:
            # Locking the project row serializes concurrent puts, so versions never collide.
            self._project(tx, project_id, lock=True)
            rows = tx.execute(
                "SELECT COALESCE(MAX(version), 0) FROM documents WHERE project_id = ? AND kind = ?",
                (project_id, kind),
            )
            version = int(rows[0][0]) + 1
            tx.execute(
                "INSERT INTO documents (project_id, kind, version, doc, created_at) VALUES (?, ?, ?, ?, ?)",
                (project_id, kind, version, text, self._clock()),
            )
        return version

    def get_document(self, project_id: str, kind: str, version: int | None = None) -> dict[str, Any] | None:
        """The document at `version` (the latest when None), or None when there is none."""
        with self._db.transaction() as tx:
            if version is None:
                rows = tx.execute(
                    "SELECT doc FROM documents WHERE project_id = ? AND kind = ? ORDER BY version DESC LIMIT 1",
                    (project_id, kind),
                )
            else:
                rows = tx.execute(
                    "SELECT doc FROM documents WHERE project_id = ? AND kind = ? AND version = ?",
                    (project_id, kind, version),
                )
        return json.loads(rows[0][0]) if rows else None

    def document_versions(self, project_id: str, kind: str) -> list[int]:
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT version FROM documents WHERE project_id = ? AND kind = ? ORDER BY version",
                (project_id, kind),
            )
        return [int(r[0]) for r in rows]

    # ---- jobs -------------------------------------------------------------------------------------

    def add_jobs(self, project_id: str, specs: Sequence[Mapping[str, Any]]) -> list[Job]:
        """Queue jobs: each spec is {kind, scene_index, start_frame, end_frame, spec, max_attempts}.

        Only `kind` is required; `max_attempts` defaults to 3."""
        now = self._clock()
        prepared = [_job_values(project_id, i, s) for i, s in enumerate(specs)]
        with self._db.transaction() as tx:
            self._project(tx, project_id, lock=True)
            base = int(
                tx.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs WHERE project_id = ?", (project_id,))[0][0]
            )
            jobs = []
            for offset, values in enumerate(prepared, start=1):
                job_id = uuid.uuid4().hex
                tx.execute(
                    "INSERT INTO jobs (id, project_id, seq, kind, scene_index, start_frame, end_frame, spec, "
                    "state, attempts_used, max_attempts, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                    (
                        job_id,
                        project_id,
                        base + offset,
                        values["kind"],
                        values["scene_index"],
                        values["start_frame"],
                        values["end_frame"],
                        values["spec"],
                        JobState.QUEUED.value,
                        values["max_attempts"],
                        now,
                        now,
                    ),
                )
                jobs.append(self._job(tx, job_id))
        return jobs

    def jobs(
        self,
        project_id: str,
        kind: str | None = None,
        state: JobState | str | None = None,
        *,
        kinds: Collection[str] | None = None,
        results: bool = True,
    ) -> list[Job]:
        """The project's jobs in the order they were added, optionally of one kind (or of `kinds`)
        and state. `results=False` leaves each job's `result` None: a footage project's analysis
        results run to tens of megabytes of JSON, which a scheduler polling job states several
        times a second must not read and parse each time."""
        cols = _JOB_COLS if results else _JOB_COLS.replace(" result,", " NULL,")
        sql = f"SELECT {cols} FROM jobs WHERE project_id = ?"
        params: list[Any] = [project_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if kinds is not None:
            kinds = sorted(set(kinds))
            if not kinds:
                return []
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params.extend(kinds)
        if state is not None:
            sql += " AND state = ?"
            params.append(_enum(JobState, state).value)
        with self._db.transaction() as tx:
            rows = tx.execute(sql + " ORDER BY seq, id", params)
        return [_job_from_row(r) for r in rows]

    def get_job(self, job_id: str) -> Job:
        with self._db.transaction() as tx:
            return self._job(tx, job_id)

    def set_job_state(self, job_id: str, state: JobState | str, error: str | None = None) -> Job:
        """Move a job along `JOB_TRANSITIONS` (JobError when the move is not in the table).

        For the coordinator's own decisions (fail a job with a bad spec, cancel one); attempts move
        jobs through `start_attempt` and `finish_attempt`."""
        target = _enum(JobState, state)
        with self._db.transaction() as tx:
            job = self._job(tx, job_id, lock=True)
            _check_transition(job, target)
            tx.execute(
                "UPDATE jobs SET state = ?, error = COALESCE(?, error), updated_at = ? WHERE id = ? AND state = ?",
                (target.value, error, self._clock(), job_id, job.state.value),
            )
            if tx.rowcount != 1:  # pragma: no cover - the row is locked (or the database is) above
                raise JobError(f"job {job_id} changed state concurrently", hint="read it again and retry")
            return self._job(tx, job_id)

    def _job(self, tx: _Tx, job_id: str, *, lock: bool = False) -> Job:
        rows = tx.execute(
            f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?" + (tx.for_update if lock else ""), (job_id,)
        )
        if not rows:
            raise NotFoundError(f"no job {job_id}", hint="list the project's jobs for the ids that exist")
        return _job_from_row(rows[0])

    # ---- attempts and fencing ---------------------------------------------------------------------

    def start_attempt(self, job_id: str, node_id: str) -> Attempt:
        """Start a new attempt of a queued job on `node_id`; the job becomes running.

        JobError when the job is not queued (running elsewhere, finished, cancelled)."""
        now = self._clock()
        attempt_id = uuid.uuid4().hex
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE jobs SET state = ?, attempts_used = attempts_used + 1, current_attempt_id = ?, "
                "updated_at = ? WHERE id = ? AND state = ?",
                (JobState.RUNNING.value, attempt_id, now, job_id, JobState.QUEUED.value),
            )
            if tx.rowcount != 1:
                job = self._job(tx, job_id)
                raise JobError(
                    f"job {job_id} is {job.state.value}; only a queued job can start an attempt",
                    hint="pick a queued job (jobs(project_id, state='queued'))",
                )
            tx.execute(
                f"INSERT INTO attempts ({_ATTEMPT_COLS}) "
                "SELECT ?, id, (SELECT COUNT(*) FROM attempts WHERE job_id = ?) + 1, ?, ?, ?, "
                "NULL, NULL, NULL, NULL FROM jobs WHERE id = ?",
                (attempt_id, job_id, node_id, AttemptState.RUNNING.value, now, job_id),
            )
            return self._attempt(tx, attempt_id)

    def finish_attempt(
        self,
        attempt_id: str,
        *,
        ok: bool,
        output_key: str | None = None,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        transient: bool = True,
        charge: bool = True,
    ) -> bool:
        """Report an attempt's end; True only when this attempt's result was promoted.

        ok: the job succeeds with this attempt's `output_key` and `result` if the job is running,
        this is its current attempt and nothing is promoted yet (one conditional UPDATE, so two
        concurrent finishers can never both promote). Not ok: the job is queued again while
        attempts remain and the error is `transient`, else it is dead with the reason. `charge=False`
        (a failure that was nobody's fault, e.g. the segment store was down) queues the job again and
        gives the attempt back to its budget. Either way a late or duplicate report returns False and
        changes only the attempt's record ('late')."""
        now = self._clock()
        result_text = None if result is None else _dumps(result, "the attempt result")
        with self._db.transaction() as tx:
            # Locked: a duplicate report racing this one waits here and then sees the decision.
            attempt = self._attempt(tx, attempt_id, lock=True)
            if attempt.state in (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED):
                return False  # a duplicate report: the first one already decided
            job = self._job(tx, attempt.job_id)
            fence = (job.id, JobState.RUNNING.value, attempt_id)
            if ok:
                tx.execute(
                    "UPDATE jobs SET state = ?, promoted_attempt_id = ?, output_key = ?, result = ?, "
                    "error = NULL, updated_at = ? "
                    "WHERE id = ? AND state = ? AND current_attempt_id = ? AND promoted_attempt_id IS NULL",
                    (JobState.SUCCEEDED.value, attempt_id, output_key, result_text, now, *fence),
                )
                own_state = AttemptState.SUCCEEDED
            else:
                # attempts_used only moves in start_attempt (from queued) and back here (an uncharged
                # failure), so while the fence below holds, the value read above is the one to use.
                retry = transient and (job.attempts_used < job.max_attempts or not charge)
                refund = 0 if charge else 1
                if retry:
                    next_state, reason = JobState.QUEUED, error
                elif transient:
                    next_state = JobState.DEAD
                    reason = f"{error} (gave up after {job.attempts_used} of {job.max_attempts} attempts)"
                else:
                    next_state, reason = JobState.DEAD, f"{error} (permanent error, not retried)"
                tx.execute(
                    "UPDATE jobs SET state = ?, error = ?, attempts_used = attempts_used - ?, updated_at = ? "
                    "WHERE id = ? AND state = ? AND current_attempt_id = ?",
                    (next_state.value, reason, refund if retry else 0, now, *fence),
                )
                own_state = AttemptState.FAILED
            current = tx.rowcount == 1
            tx.execute(
                "UPDATE attempts SET state = ?, finished_at = ?, output_key = ?, result = ?, error = ? "
                "WHERE id = ?",
                (
                    (own_state if current else AttemptState.LATE).value,
                    now,
                    output_key,
                    result_text,
                    error,
                    attempt_id,
                ),
            )
        return current and ok

    def get_attempt(self, attempt_id: str) -> Attempt:
        with self._db.transaction() as tx:
            return self._attempt(tx, attempt_id)

    def attempts(self, job_id: str) -> list[Attempt]:
        """A job's attempts, oldest first."""
        with self._db.transaction() as tx:
            rows = tx.execute(
                f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE job_id = ? ORDER BY number", (job_id,)
            )
        return [_attempt_from_row(r) for r in rows]

    def requeue_attempts_of_node(self, node_id: str, reason: str) -> list[str]:
        """Queue again the running jobs whose current attempt runs on `node_id` (the node is gone).

        Their attempts are marked lost. A job whose retry budget is already spent goes dead
        instead, so a job that takes its nodes down cannot cycle for ever. Returns the job ids."""
        return self._requeue("a.node_id = ?", (node_id,), f"node {node_id} lost: {reason}")

    def requeue_stale(self, older_than_s: float) -> list[str]:
        """Like `requeue_attempts_of_node`, for running attempts started more than `older_than_s` ago."""
        cutoff = self._clock() - older_than_s
        return self._requeue("a.started_at < ?", (cutoff,), f"attempt ran longer than {older_than_s:g} s")

    def _requeue(self, condition: str, params: tuple[Any, ...], reason: str) -> list[str]:
        now = self._clock()
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT j.id, a.id, j.attempts_used, j.max_attempts FROM jobs j "
                "JOIN attempts a ON a.id = j.current_attempt_id "
                f"WHERE j.state = ? AND {condition} ORDER BY j.id" + tx.for_update,
                (JobState.RUNNING.value, *params),
            )
            moved = []
            for job_id, attempt_id, used, most in rows:
                next_state = JobState.QUEUED if used < most else JobState.DEAD
                error = reason if next_state is JobState.QUEUED else f"{reason} (retry budget spent)"
                tx.execute(
                    "UPDATE jobs SET state = ?, error = ?, updated_at = ? "
                    "WHERE id = ? AND state = ? AND current_attempt_id = ?",
                    (next_state.value, error, now, job_id, JobState.RUNNING.value, attempt_id),
                )
                if tx.rowcount == 1:
                    tx.execute(
                        "UPDATE attempts SET state = ?, finished_at = ?, error = ? WHERE id = ? AND state = ?",
                        (AttemptState.LOST.value, now, reason, attempt_id, AttemptState.RUNNING.value),
                    )
                    moved.append(job_id)
        return moved

    def _attempt(self, tx: _Tx, attempt_id: str, *, lock: bool = False) -> Attempt:
        rows = tx.execute(
            f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE id = ?" + (tx.for_update if lock else ""),
            (attempt_id,),
        )
        if not rows:
            raise NotFoundError(
                f"no attempt {attempt_id}", hint="an attempt id comes from start_attempt on this store"
            )
        return _attempt_from_row(rows[0])

    # ---- nodes and blocklist ----------------------------------------------------------------------

    def upsert_node(self, node_id: str, address: str, capabilities: Mapping[str, Any]) -> NodeRecord:
        """Register a node (or update its address and capabilities); counts as a heartbeat."""
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                f"INSERT INTO nodes ({_NODE_COLS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "address = excluded.address, capabilities = excluded.capabilities, "
                "last_heartbeat = excluded.last_heartbeat",
                (node_id, address, _dumps(capabilities, "node capabilities"), now, now),
            )
            return self._node(tx, node_id)

    def heartbeat(self, node_id: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE nodes SET last_heartbeat = ? WHERE id = ?", (self._clock(), node_id))
            if tx.rowcount == 0:
                raise NotFoundError(f"no node {node_id}", hint="the node must register (upsert_node) first")

    def nodes(self, alive_within_s: float | None = None) -> list[NodeRecord]:
        """Registered nodes by id; only those heard from within `alive_within_s` when given."""
        with self._db.transaction() as tx:
            if alive_within_s is None:
                rows = tx.execute(f"SELECT {_NODE_COLS} FROM nodes ORDER BY id")
            else:
                rows = tx.execute(
                    f"SELECT {_NODE_COLS} FROM nodes WHERE last_heartbeat >= ? ORDER BY id",
                    (self._clock() - alive_within_s,),
                )
        return [_node_from_row(r) for r in rows]

    def record_failure(self, node_id: str, job_kind: str) -> int:
        """Count one more failure of `node_id` at jobs of `job_kind`; returns the new count."""
        with self._db.transaction() as tx:
            rows = tx.execute(
                "INSERT INTO node_failures (node_id, job_kind, count, last_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (node_id, job_kind) DO UPDATE SET count = node_failures.count + 1, "
                "last_at = excluded.last_at RETURNING count",
                (node_id, job_kind, self._clock()),
            )
        return int(rows[0][0])

    def is_blocklisted(self, node_id: str, job_kind: str, threshold: int = 3) -> bool:
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT count FROM node_failures WHERE node_id = ? AND job_kind = ?", (node_id, job_kind)
            )
        return bool(rows) and int(rows[0][0]) >= threshold

    def clear_failures(self, node_id: str, job_kind: str | None = None) -> None:
        """Forget a node's failures (of one kind, or all): e.g. after an operator fixed it."""
        with self._db.transaction() as tx:
            if job_kind is None:
                tx.execute("DELETE FROM node_failures WHERE node_id = ?", (node_id,))
            else:
                tx.execute(
                    "DELETE FROM node_failures WHERE node_id = ? AND job_kind = ?", (node_id, job_kind)
                )

    def _node(self, tx: _Tx, node_id: str) -> NodeRecord:
        rows = tx.execute(f"SELECT {_NODE_COLS} FROM nodes WHERE id = ?", (node_id,))
        if not rows:
            raise NotFoundError(f"no node {node_id}", hint="the node must register (upsert_node) first")
        return _node_from_row(rows[0])


# --------------------------------------------------------------------------------------------------
# Rows <-> domain values: the one place that knows the column order and the JSON encoding.


def _dumps(value: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{what} cannot be stored as JSON: {exc}",
            hint="use dicts, lists, strings, finite numbers, booleans and None only",
        ) from exc


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _enum(kind: type[Any], value: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InputError(f"{value!r} is not a {kind.__name__}", hint=f"use one of: {allowed}") from None


def _check_transition(job: Job, target: JobState) -> None:
    if target not in JOB_TRANSITIONS[job.state]:
        allowed = ", ".join(sorted(s.value for s in JOB_TRANSITIONS[job.state])) or "none: it is finished"
        raise JobError(
            f"job {job.id} cannot go from {job.state.value} to {target.value}",
            hint=f"from {job.state.value} it may go to {allowed}",
        )


def _no_project(project_id: str) -> NotFoundError:
    return NotFoundError(f"no project {project_id}", hint="list_projects(tenant) shows the ids that exist")


def _job_values(project_id: str, index: int, spec: Mapping[str, Any]) -> dict[str, Any]:
    known = {"kind", "scene_index", "start_frame", "end_frame", "spec", "max_attempts"}
    unknown = set(spec) - known
    if unknown or not isinstance(spec.get("kind"), str) or not spec["kind"]:
        raise InputError(
            f"job spec {index} for project {project_id} is malformed ({sorted(unknown) or 'no kind'})",
            hint=f"give a non-empty 'kind' and only these keys: {', '.join(sorted(known))}",
        )
    max_attempts = spec.get("max_attempts", 3)
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise InputError(f"job spec {index}: max_attempts must be a positive integer, not {max_attempts!r}")
    start, end = spec.get("start_frame"), spec.get("end_frame")
    # An empty range (0, 0) is allowed: jobs that cover no frames (audio, score) use it.
    if start is not None and end is not None and not 0 <= start <= end:
        raise InputError(
            f"job spec {index}: frame range [{start}, {end}) is reversed or negative",
            hint="end_frame is exclusive and may not be less than start_frame",
        )
    return {
        "kind": spec["kind"],
        "scene_index": spec.get("scene_index"),
        "start_frame": start,
        "end_frame": end,
        "spec": _dumps(spec.get("spec") or {}, f"job spec {index}"),
        "max_attempts": max_attempts,
    }


def _project_from_row(r: Sequence[Any]) -> Project:
    return Project(
        id=r[0],
        tenant=r[1],
        name=r[2],
        options=json.loads(r[3]),
        state=ProjectState(r[4]),
        stage=r[5],
        progress=r[6],
        error=r[7],
        created_at=r[8],
        updated_at=r[9],
    )


def _job_from_row(r: Sequence[Any]) -> Job:
    return Job(
        id=r[0],
        project_id=r[1],
        kind=r[2],
        scene_index=r[3],
        start_frame=r[4],
        end_frame=r[5],
        spec=json.loads(r[6]),
        state=JobState(r[7]),
        attempts_used=r[8],
        max_attempts=r[9],
        current_attempt_id=r[10],
        promoted_attempt_id=r[11],
        output_key=r[12],
        result=_loads(r[13]),
        error=r[14],
        created_at=r[15],
        updated_at=r[16],
    )


def _attempt_from_row(r: Sequence[Any]) -> Attempt:
    return Attempt(
        id=r[0],
        job_id=r[1],
        number=r[2],
        node_id=r[3],
        state=AttemptState(r[4]),
        started_at=r[5],
        finished_at=r[6],
        output_key=r[7],
        result=_loads(r[8]),
        error=r[9],
    )


def _node_from_row(r: Sequence[Any]) -> NodeRecord:
    return NodeRecord(
        id=r[0], address=r[1], capabilities=json.loads(r[2]), registered_at=r[3], last_heartbeat=r[4]
    )
