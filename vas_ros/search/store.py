"""The SQLite record of a search: its settings and every candidate as soon as it is known.

One file per search. Each write is its own transaction (WAL journal, synchronous=FULL), so
a search killed at any instant leaves a consistent file: a candidate is either recorded
with its last known status or not at all. The engine resumes by replaying its proposals
against this record (see `engine.py`), which is why the search settings that shape the
proposals (family, data, budget, seed, population, ...) are stored in the header and a
store made for other settings is refused. An advisory lock (`<store>.lock`, released by
the kernel even on SIGKILL) keeps two searches from writing one store at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vas_ros.errors import StoreError
from vas_ros.search.records import Status

SCHEMA_VERSION = 1
STATUSES = tuple(Status)  # the store holds their string values
# Header keys that must match for a store to be resumed.
IDENTITY_KEYS = ('family', 'data', 'budget_ms', 'seed', 'config')

# Columns added after version 1 stores existed: in the schema, and added to older stores
# when they are opened (all nullable).
_ADDED_COLUMNS = {'memory_mb': 'REAL', 'predicted_ms': 'REAL', 'inherited': 'REAL',
                  'accuracy_long': 'REAL', 'latency_confirmed_ms': 'REAL'}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER,
    origin TEXT NOT NULL,
    genome TEXT NOT NULL,
    genome_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    latency_ms REAL, latency_p10_ms REAL, latency_p90_ms REAL,
    params INTEGER, macs INTEGER,
    accuracy REAL, train_seconds REAL, train_steps INTEGER,
    error TEXT,
    next_genome TEXT,
    """ + ''.join(f'{name} {kind}, ' for name, kind in _ADDED_COLUMNS.items()) + """
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    pid INTEGER, argv TEXT,
    started_at REAL NOT NULL, ended_at REAL, elapsed_s REAL, state TEXT
);
"""


@dataclass
class CandidateRecord:
    """One proposed architecture and everything learned about it.

    `id` is the proposal's position in the search (0-based, gap-free); `origin` is
    'seed', 'random' or 'mutation'; `next_genome` is what mutations of this candidate
    start from when the space's `after_training` changed it. `accuracy` is the proxy
    fitness; `accuracy_long` the fitness after the longer training that the best of the
    search get before the winner is chosen (multi-fidelity). `latency_confirmed_ms` is a
    second, longer latency measurement of a finalist, taken after the search.
    """

    id: int
    parent_id: int | None
    origin: str
    genome: dict
    genome_hash: str
    status: Status = Status.PENDING
    latency_ms: float | None = None
    latency_p10_ms: float | None = None
    latency_p90_ms: float | None = None
    params: int | None = None
    macs: int | None = None
    accuracy: float | None = None
    train_seconds: float | None = None
    train_steps: int | None = None
    error: str | None = None
    next_genome: dict | None = None
    memory_mb: float | None = None  # estimated training peak at the proxy batch size
    predicted_ms: float | None = None  # the latency model's prediction when proposed
    inherited: float | None = None  # share of parameters copied from the parent
    accuracy_long: float | None = None  # after the longer training of the promoted ones
    latency_confirmed_ms: float | None = None  # re-measured before it may win
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self):
        self.status = _status(self.status)

    @property
    def parent_genome(self) -> dict:
        return self.next_genome or self.genome


def _status(value) -> Status:
    """A Status from itself or its string (how the store holds it)."""
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f'unknown status {value!r} (one of '
                         f'{", ".join(s.value for s in Status)})') from None


_COLUMNS = [f.name for f in fields(CandidateRecord)]
_JSON_COLUMNS = ('genome', 'next_genome')


def _to_row(rec: CandidateRecord) -> dict:
    row = asdict(rec)
    row['status'] = Status(row['status']).value  # the plain string, as always stored
    for key in _JSON_COLUMNS:
        row[key] = None if row[key] is None else json.dumps(row[key], sort_keys=True)
    return row


def _from_row(row: sqlite3.Row) -> CandidateRecord:
    data = dict(zip(row.keys(), row))
    for key in _JSON_COLUMNS:
        data[key] = None if data[key] is None else json.loads(data[key])
    try:
        return CandidateRecord(**data)
    except ValueError as exc:  # a status this vas-ros does not know
        raise StoreError(f'candidate {data.get("id")} in the store: {exc}') from None


class SearchStore:
    """An open store. Use `SearchStore.open(path, header)`; close it (or use `with`)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int):
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path, header: dict | None = None) -> SearchStore:
        """Open or create the store at `path`.

        With `header`, a new store records it and an existing one must match it on
        `IDENTITY_KEYS` (else StoreError naming the differing settings). Without it the
        store must already exist (read access for reports).
        """
        path = Path(path).expanduser().resolve()
        if path.is_dir():
            raise StoreError(f'{path}: is a directory; --store needs a file path')
        if not path.parent.is_dir():
            raise StoreError(f'{path}: folder {path.parent} does not exist')
        if header is None and not path.is_file():
            raise StoreError(f'{path}: no such search store')
        if header is not None and path.is_file() and not os.access(path, os.W_OK):
            # SQLite would open it read-only and fail only at the first result to record.
            raise StoreError(f'{path}: the store file is read-only; a search must record '
                             f'every candidate (make it writable or choose another --store)')
        lock_fd = cls._lock(path) if header is not None else -1
        try:
            conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {'meta', 'candidates', 'runs'} <= tables:
                conn.close()
                if lock_fd >= 0:
                    os.close(lock_fd)
                raise StoreError(f'{path}: an SQLite file but not a vas-ros search store '
                                 f'(tables {sorted(tables)}); left untouched')
            if tables:  # checked before anything is written to it
                problems = [r[0] for r in conn.execute('PRAGMA quick_check(3)')]
                if problems != ['ok']:
                    conn.close()
                    if lock_fd >= 0:
                        os.close(lock_fd)
                    raise StoreError(_damaged(path, problems[0]))
            if header is not None:
                conn.execute('PRAGMA journal_mode=WAL')
                conn.execute('PRAGMA synchronous=FULL')
                conn.executescript('BEGIN IMMEDIATE;' + _SCHEMA + 'COMMIT;')
                _add_missing_columns(conn)
            else:
                conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
        except sqlite3.Error as exc:
            if lock_fd >= 0:
                os.close(lock_fd)
            if 'malformed' in str(exc) or 'corrupt' in str(exc):
                raise StoreError(_damaged(path, str(exc))) from None
            raise StoreError(f'{path}: cannot use as a search store ({exc})') from None
        store = cls(path, conn, lock_fd)
        try:
            store._check_or_write_header(header)
        except BaseException:
            store.close()
            raise
        return store

    @staticmethod
    def _lock(path: Path) -> int:
        lock_path = path.with_name(path.name + '.lock')
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f'{path}: cannot write next to the store ({exc.strerror}: '
                             f'{lock_path})') from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f'{path}: in use by another running search (lock {lock_path})'
                             ) from None
        return fd

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self._conn.execute(f'PRAGMA table_info({table})')}

    def _check_or_write_header(self, header: dict | None) -> None:
        try:
            if (self._columns('meta') != {'key', 'value'}
                    or not set(_COLUMNS) <= self._columns('candidates')):
                raise StoreError(f'{self.path}: not a vas-ros search store (its tables are '
                                 f'not the ones vas-ros writes)')
            meta = {r['key']: r['value'] for r in self._read('SELECT * FROM meta')}
        except sqlite3.Error as exc:
            raise StoreError(f'{self.path}: not a vas-ros search store ({exc})') from None
        if meta:
            version = meta.get('schema_version')
            if version != str(SCHEMA_VERSION):
                raise StoreError(f'{self.path}: store schema version {version}, this vas-ros '
                                 f'reads version {SCHEMA_VERSION}')
        if header is None:
            if not meta:
                raise StoreError(f'{self.path}: not a vas-ros search store (no header)')
            return
        wanted = {k: json.dumps(header[k], sort_keys=True) for k in IDENTITY_KEYS}
        if not meta:
            rows = [('schema_version', str(SCHEMA_VERSION)),
                    ('created_at', json.dumps(time.time())), *wanted.items()]
            try:
                with self._tx():
                    self._conn.executemany('INSERT INTO meta VALUES (?, ?)', rows)
            except sqlite3.Error as exc:
                raise StoreError(f'{self.path}: write failed ({exc})') from None
            return
        stored = {k: meta.get(k) for k in IDENTITY_KEYS}
        if stored['family'] != wanted['family']:
            raise StoreError(f'{self.path}: this store belongs to a {json.loads(stored["family"])}'
                             f' search, not {header["family"]}; use another --store')
        diffs = _differences(stored, wanted)
        if diffs:
            raise StoreError(f'{self.path}: made for other search settings ({"; ".join(diffs)})'
                             f'; rerun with the original settings or use another --store')

    # -- transactions --------------------------------------------------------------------
    def _tx(self):
        return _Transaction(self)

    def _read(self, sql: str, params=()) -> list[sqlite3.Row]:
        """Every read goes through here, so a damaged file is a StoreError, not a raw
        sqlite3 traceback; nothing is written on that path."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_damaged(self.path, str(exc))) from None

    def _write(self, sql: str, params=()) -> None:
        try:
            with self._tx():
                self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f'{self.path}: write failed ({exc})') from None

    # -- header --------------------------------------------------------------------------
    def header(self) -> dict:
        meta = {r['key']: r['value'] for r in self._read('SELECT * FROM meta')}
        out = {k: json.loads(v) for k, v in meta.items() if k != 'schema_version'}
        out['schema_version'] = int(meta['schema_version'])
        return out

    # -- candidates ----------------------------------------------------------------------
    def insert(self, rec: CandidateRecord) -> CandidateRecord:
        now = time.time()
        rec.created_at = rec.created_at or now
        rec.updated_at = now
        row = _to_row(rec)
        cols = ', '.join(_COLUMNS)
        marks = ', '.join(f':{c}' for c in _COLUMNS)
        self._write(f'INSERT INTO candidates ({cols}) VALUES ({marks})', row)
        return rec

    def update(self, rec: CandidateRecord, **changes) -> CandidateRecord:
        """Set `changes` on `rec` and write them in one transaction."""
        if 'status' in changes:
            changes['status'] = _status(changes['status'])
        for key, value in changes.items():
            setattr(rec, key, value)
        rec.updated_at = time.time()
        row = _to_row(rec)
        keys = [*changes, 'updated_at']
        sets = ', '.join(f'{k} = :{k}' for k in keys)
        self._write(f'UPDATE candidates SET {sets} WHERE id = :id',
                    {**{k: row[k] for k in keys}, 'id': rec.id})
        return rec

    def get(self, cid: int) -> CandidateRecord | None:
        rows = self._read('SELECT * FROM candidates WHERE id = ?', (cid,))
        return _from_row(rows[0]) if rows else None

    def candidates(self, status: Status | str | None = None) -> list[CandidateRecord]:
        if status is None:
            rows = self._read('SELECT * FROM candidates ORDER BY id')
        else:
            rows = self._read('SELECT * FROM candidates WHERE status = ? ORDER BY id',
                              (_status(status).value,))
        return [_from_row(r) for r in rows]

    def counts(self) -> dict[Status, int]:
        rows = self._read('SELECT status, count(*) FROM candidates GROUP BY status')
        out = dict.fromkeys(STATUSES, 0)
        out.update({_status(r[0]): r[1] for r in rows})
        return out

    # -- runs (for the time budget across resumes) ---------------------------------------
    def begin_run(self, argv: list[str] | None = None) -> int:
        now = time.time()
        try:
            with self._tx():
                cur = self._conn.execute(
                    'INSERT INTO runs (pid, argv, started_at, elapsed_s, state) '
                    'VALUES (?, ?, ?, 0, ?)', (os.getpid(), json.dumps(argv or []), now,
                                               'running'))
        except sqlite3.Error as exc:
            raise StoreError(f'{self.path}: write failed ({exc})') from None
        return int(cur.lastrowid)

    def touch_run(self, run_id: int, state: str = 'running') -> None:
        """Record this run's elapsed time (so a killed run still counts toward the budget)."""
        now = time.time()
        self._write('UPDATE runs SET ended_at = ?, elapsed_s = ? - started_at, state = ? '
                    'WHERE id = ?', (now, now, state, run_id))

    def elapsed_before(self, run_id: int) -> float:
        rows = self._read('SELECT coalesce(sum(elapsed_s), 0) FROM runs WHERE id != ?',
                          (run_id,))
        return float(rows[0][0])

    def runs(self) -> list[dict]:
        return [dict(zip(r.keys(), r)) for r in self._read('SELECT * FROM runs ORDER BY id')]

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> SearchStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _damaged(path: Path, problem: str) -> str:
    return (f'{path}: the store is damaged ({problem}); it was left as it is. '
            f'`sqlite3 {path.name} .recover` salvages the readable candidates into a new '
            f'file; or start afresh with another --store')


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Columns added after a store was made (all nullable) are added to it on open."""
    have = {r[1] for r in conn.execute('PRAGMA table_info(candidates)')}
    if not have:
        return
    for column, kind in _ADDED_COLUMNS.items():
        if column not in have:
            conn.execute(f'ALTER TABLE candidates ADD COLUMN {column} {kind}')


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, store: SearchStore):
        self.conn = store._conn

    def __enter__(self):
        self.conn.execute('BEGIN IMMEDIATE')
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute('COMMIT')
        else:
            self.conn.execute('ROLLBACK')
        return False


def _differences(stored: dict, wanted: dict) -> list[str]:
    out = []
    for key in IDENTITY_KEYS:
        if stored.get(key) == wanted[key]:
            continue
        old = json.loads(stored[key]) if stored.get(key) is not None else None
        new = json.loads(wanted[key])
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    out.append(f'{key}.{sub}: store has {old.get(sub)!r}, now {new.get(sub)!r}')
        else:
            out.append(f'{key}: store has {old!r}, now {new!r}')
    return out
