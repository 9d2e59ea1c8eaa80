"""The SQLite search store: round trip, refusals, and never corrupting what it holds."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from vas_ros.errors import StoreError
from vas_ros.search.records import Status
from vas_ros.search.store import SCHEMA_VERSION, CandidateRecord, SearchStore

HEADER = {'family': 'tvn', 'data': '/data/a', 'budget_ms': 30.0, 'seed': 1,
          'config': {'population': 4, 'tournament': 2, 'space': {'max_filters': 64}}}


def test_round_trip_of_header_candidates_and_runs(tmp_path):
    path = tmp_path / 's.db'
    with SearchStore.open(path, HEADER) as store:
        run_id = store.begin_run(['vas-ros', 'search'])
        rec = store.insert(CandidateRecord(0, None, 'random', {'a': [1, 2]}, 'abc'))
        store.update(rec, status='training', latency_ms=12.5, latency_p10_ms=12.0,
                     latency_p90_ms=13.0, params=1000, macs=2000)
        store.update(rec, status='done', accuracy=0.75, train_seconds=3.5, train_steps=10,
                     next_genome={'a': [1]})
        store.insert(CandidateRecord(1, 0, 'mutation', {'a': [3]}, 'def', status='rejected',
                                     error='too slow', latency_ms=99.0))
        store.touch_run(run_id, 'done')
    with SearchStore.open(path) as store:  # read-only open needs no header
        header = store.header()
        records = store.candidates()
        assert store.counts()['done'] == 1 and store.counts()['rejected'] == 1
        assert store.runs()[0]['state'] == 'done'
    assert header['schema_version'] == SCHEMA_VERSION
    assert {k: header[k] for k in HEADER} == HEADER
    first = records[0]
    assert (first.status, first.accuracy, first.latency_ms, first.params, first.macs) == \
        ('done', 0.75, 12.5, 1000, 2000)
    assert first.status is Status.DONE and records[1].status is Status.REJECTED
    assert first.genome == {'a': [1, 2]} and first.parent_genome == {'a': [1]}
    assert records[1].parent_id == 0 and records[1].error == 'too slow'
    assert first.created_at <= first.updated_at


def test_refuses_a_store_of_another_family_or_other_settings(tmp_path):
    path = tmp_path / 's.db'
    with SearchStore.open(path, HEADER) as store:
        store.insert(CandidateRecord(0, None, 'random', {'x': 1}, 'h0'))
    before = path.read_bytes()
    with pytest.raises(StoreError, match='belongs to a tvn search, not evanet'):
        SearchStore.open(path, {**HEADER, 'family': 'evanet'})
    other = {**HEADER, 'budget_ms': 40.0,
             'config': {**HEADER['config'], 'space': {'max_filters': 128}}}
    with pytest.raises(StoreError) as info:
        SearchStore.open(path, other)
    message = str(info.value)
    assert 'budget_ms: store has 30.0, now 40.0' in message
    assert "config.space: store has {'max_filters': 64}" in message
    with SearchStore.open(path, HEADER) as store:  # still intact and resumable
        assert [r.genome for r in store.candidates()] == [{'x': 1}]
    assert len(before) > 0


def test_unusable_paths_are_clear_errors(tmp_path):
    with pytest.raises(StoreError, match='does not exist'):
        SearchStore.open(tmp_path / 'missing' / 's.db', HEADER)
    with pytest.raises(StoreError, match='is a directory'):
        SearchStore.open(tmp_path, HEADER)
    junk = tmp_path / 'junk.db'
    junk.write_bytes(b'this is not a database at all' * 100)
    with pytest.raises(StoreError, match='cannot use as a search store'):
        SearchStore.open(junk, HEADER)
    assert junk.read_bytes() == b'this is not a database at all' * 100
    foreign = tmp_path / 'foreign.db'
    conn = sqlite3.connect(foreign)
    conn.execute('CREATE TABLE meta (k TEXT)')
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match='not a vas-ros search store'):
        SearchStore.open(foreign, HEADER)
    conn = sqlite3.connect(foreign)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ['meta'], 'a foreign database must be left untouched'


def test_unwritable_folder_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:  # root ignores permissions; procfs refuses new files even to root
        folder = Path(f'/proc/{os.getpid()}')
    else:
        folder = tmp_path / 'ro'
        folder.mkdir()
        folder.chmod(0o500)
    try:
        with pytest.raises(StoreError, match='cannot write next to the store'):
            SearchStore.open(folder / 's.db', HEADER)
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o700)
    assert not (folder / 's.db').exists()


def _open_as_nobody(path) -> str:
    """As root (CI) permissions don't bind, so try the open in a child running as `nobody`.

    Returns 'opened' or the StoreError message the child saw.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, report what happened, never return into pytest
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                SearchStore.open(path, HEADER).close()
                message = 'opened'
            except StoreError as exc:
                message = f'StoreError: {exc}'
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        return pipe.read()


def test_read_only_store_file_is_refused_without_damage(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix='vas_ro_store_'))  # reachable by other users
    path = folder / 's.db'
    try:
        with SearchStore.open(path, HEADER) as store:
            store.insert(CandidateRecord(0, None, 'random', {'x': 1}, 'h0'))
        # Only the database file is read-only: its folder and lock file are writable.
        folder.chmod(0o777)
        for other in folder.iterdir():
            other.chmod(0o666)
        path.chmod(0o444)
        if os.geteuid() == 0:
            seen = _open_as_nobody(path)
            assert seen.startswith('StoreError') and 'lock' not in seen, seen
        else:
            with pytest.raises(StoreError):
                SearchStore.open(path, HEADER)
        path.chmod(0o644)
        with SearchStore.open(path) as store:
            assert len(store.candidates()) == 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_searches_cannot_share_a_store(tmp_path):
    path = tmp_path / 's.db'
    with SearchStore.open(path, HEADER):
        with pytest.raises(StoreError, match='in use by another running search'):
            SearchStore.open(path, HEADER)
    with SearchStore.open(path, HEADER):  # the lock went with the first
        pass


def test_a_failed_write_leaves_earlier_rows_intact(tmp_path):
    path = tmp_path / 's.db'
    with SearchStore.open(path, HEADER) as store:
        store.insert(CandidateRecord(0, None, 'random', {'x': 1}, 'h0'))
        with pytest.raises(StoreError, match='write failed'):
            store.insert(CandidateRecord(0, None, 'random', {'x': 2}, 'h1'))  # same id
        with pytest.raises(ValueError, match='unknown status'):
            store.update(store.get(0), status='finished')
        assert store.get(0).status is Status.PENDING, 'a refused update must not be written'
        assert [r.genome for r in store.candidates()] == [{'x': 1}]
        assert conn_integrity(path) == 'ok'


def conn_integrity(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute('PRAGMA integrity_check').fetchone()[0]
    finally:
        conn.close()


def _damage_one_page(path: Path, page: int = 4, page_size: int = 4096) -> bytes:
    """Overwrite one page of a closed store with garbage; returns the damaged bytes."""
    data = bytearray(path.read_bytes())
    assert len(data) >= (page + 2) * page_size, 'store too small to damage a middle page'
    data[page * page_size:(page + 1) * page_size] = bytes(range(256)) * (page_size // 256)
    path.write_bytes(bytes(data))
    return bytes(data)


def fill_store(path: Path, n: int = 60) -> None:
    with SearchStore.open(path, HEADER) as store:
        for i in range(n):
            store.insert(CandidateRecord(i, None, 'random', {'pad': 'x' * 300, 'i': i},
                                         f'h{i}', status='done', accuracy=0.1))


def test_a_damaged_page_is_a_store_error_and_the_file_is_left_as_it_was(tmp_path):
    path = tmp_path / 's.db'
    fill_store(path)
    damaged = _damage_one_page(path)
    for header in (HEADER, None):  # resuming a search, and reading a report
        with pytest.raises(StoreError, match=r's\.db: the store is damaged .*left as it is'
                                             r'.*\.recover'):
            SearchStore.open(path, header)
        assert path.read_bytes() == damaged


def _old_store(path: Path, rows: list[tuple[int, str]]) -> None:
    """A store as vas-ros wrote it before statuses were an enum: plain SQL, plain strings,
    and the version 1 columns only (no memory_mb, predicted_ms, ...)."""
    import json
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE candidates (
            id INTEGER PRIMARY KEY, parent_id INTEGER, origin TEXT NOT NULL,
            genome TEXT NOT NULL, genome_hash TEXT NOT NULL, status TEXT NOT NULL,
            latency_ms REAL, latency_p10_ms REAL, latency_p90_ms REAL,
            params INTEGER, macs INTEGER, accuracy REAL, train_seconds REAL,
            train_steps INTEGER, error TEXT, next_genome TEXT,
            created_at REAL NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE runs (id INTEGER PRIMARY KEY, pid INTEGER, argv TEXT,
            started_at REAL NOT NULL, ended_at REAL, elapsed_s REAL, state TEXT);
    """)
    conn.executemany('INSERT INTO meta VALUES (?, ?)',
                     [('schema_version', '1'), ('created_at', '1.0')]
                     + [(k, json.dumps(HEADER[k], sort_keys=True)) for k in HEADER])
    conn.executemany(
        'INSERT INTO candidates (id, origin, genome, genome_hash, status, accuracy, error, '
        'created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1.0, 1.0)',
        [(cid, 'random', json.dumps({'i': cid}), f'h{cid}', status,
          0.5 if status == 'done' else None, 'no' if status in ('failed', 'rejected') else None)
         for cid, status in rows])
    conn.commit()
    conn.close()


def _raw_statuses(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute('SELECT id, status, typeof(status) FROM candidates ORDER BY id'
                            ).fetchall()
    finally:
        conn.close()


def test_a_store_written_with_plain_string_statuses_reads_back_as_the_enum(tmp_path):
    path = tmp_path / 'old.db'
    rows = [(0, 'done'), (1, 'rejected'), (2, 'training'), (3, 'pending'), (4, 'failed')]
    _old_store(path, rows)
    with SearchStore.open(path, HEADER) as store:  # a resume opens it with its header
        records = store.candidates()
        assert [r.status for r in records] == [Status(s) for _, s in rows]
        assert all(type(r.status) is Status for r in records)
        assert store.counts() == {Status.PENDING: 1, Status.REJECTED: 1, Status.TRAINING: 1,
                                  Status.DONE: 1, Status.FAILED: 1}
        assert [r.id for r in store.candidates(Status.TRAINING)] == [2]
        assert [r.id for r in store.candidates('done')] == [0]
        store.update(records[2], status=Status.DONE, accuracy=0.25)
        store.update(records[3], status='training')
    # On disk the statuses are still the plain strings (and only the updated rows changed).
    assert _raw_statuses(path) == [(0, 'done', 'text'), (1, 'rejected', 'text'),
                                   (2, 'done', 'text'), (3, 'training', 'text'),
                                   (4, 'failed', 'text')]


def test_a_status_the_code_does_not_know_is_a_store_error(tmp_path):
    path = tmp_path / 'odd.db'
    _old_store(path, [(0, 'done'), (1, 'finished')])
    with SearchStore.open(path, HEADER) as store:
        assert store.get(0).status is Status.DONE
        with pytest.raises(StoreError, match="candidate 1 in the store: unknown status "
                                             "'finished'"):
            store.candidates()
