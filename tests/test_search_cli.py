"""Whole searches on real synthetic videos: CLI end to end with SIGKILL + resume, SIGTERM,
a real local Ray, an impossible budget and a foreign store."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vas_ros.errors import VasError
from vas_ros.search.store import SearchStore

SPACE = {'max_filters': 16, 'min_filters': 8, 'sizes': [32, 32], 'frames': [2, 4],
         'frame_strides': [1, 2], 'blocks': [2, 3], 'max_repeats': 2, 'max_expand': 2}


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from vas_ros.data.synth import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp('synth') / 'data', per_class=2,
                                   seed=0, size=32, frames=8, progress=False)


def cli_args(data, store, out, *extra, population=3, rounds=2, budget=2000) -> list[str]:
    args = [sys.executable, '-m', 'vas_ros', 'search', 'tvn', '--data', str(data),
            '--latency-budget-ms', str(budget), '--population', str(population),
            '--rounds', str(rounds), '--store', str(store), '--out', str(out),
            '--proxy-steps', '3', '--final-epochs', '1', '--final-steps', '2',
            '--latency-repeats', '3', '--threads', '1', '--quiet', *extra]
    for key, value in SPACE.items():
        args += ['--space-option', f'{key}={json.dumps(value)}']
    return args


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def store_rows(store: Path) -> list:
    if not store.exists():
        return []
    try:
        with SearchStore.open(store) as opened:
            return opened.candidates()
    except VasError:  # header not written yet
        return []


def wait_for(predicate, proc, timeout=240.0, what=''):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ''
            pytest.fail(f'search exited ({proc.returncode}) before {what}:\n{out[-3000:]}')
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f'timed out waiting for {what}')


@pytest.mark.slow
def test_search_killed_with_sigkill_resumes_without_losing_or_repeating_work(
        data, tmp_path, ros_env):
    store, out, progress = tmp_path / 's.db', tmp_path / 'out', tmp_path / 'p.jsonl'
    args = cli_args(data, store, out, '--progress-jsonl', str(progress))
    proc = subprocess.Popen(args, env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: sum(r.status == 'done' for r in store_rows(store)) >= 2, proc,
             what='two candidates done')
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = {r.id: r for r in store_rows(store) if r.status == 'done'}
    assert len(before) >= 2
    assert not (out / 'best.safetensors').exists()

    resumed = subprocess.run(args, env=ros_env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = store_rows(store)
    done = [r for r in after if r.status == 'done']
    assert len(done) == 3 + 2, [(r.id, r.status, r.error) for r in after]
    for cid, rec in before.items():  # recorded results were reused, not re-evaluated
        again = next(r for r in after if r.id == cid)
        assert (again.accuracy, again.train_seconds, again.train_steps) == \
            (rec.accuracy, rec.train_seconds, rec.train_steps)
        # Only the longer training of the best (multi-fidelity) may write to it since.
        assert again.updated_at == rec.updated_at or again.accuracy_long is not None
    with SearchStore.open(store) as opened:
        assert len(opened.runs()) == 2

    # Outputs of a finished search.
    from vas_ros.models.checkpoint import load_checkpoint
    from vas_ros.models.factory import resolve_arch

    loaded = load_checkpoint(out / 'best.safetensors')
    summary = json.loads((out / 'summary.json').read_text())
    best = summary['best']
    assert summary['state'] == 'done' and summary['counts']['done'] == 5
    assert loaded.arch.genome.to_dict() == best['genome']
    assert loaded.arch.genome == resolve_arch(out / 'best_genome.json').genome
    promoted = [r for r in after if r.accuracy_long is not None]
    assert len(promoted) == 2  # the best third of 5, at least 2
    assert {r.id for r in promoted} == {r.id for r in sorted(
        done, key=lambda r: (-r.accuracy, r.latency_ms, r.id))[:2]}
    assert best['long_accuracy'] == max(r.accuracy_long for r in promoted)
    # The winner was timed again before its final training, and fits (2 s budget).
    confirmation = summary['latency_confirmation']
    assert confirmation['met_budget'] and not confirmation['replaced']
    assert confirmation['tried'] == [{'id': best['id'], 'latency_ms': best['latency_ms'],
                                      'confirmed_ms': best['latency_confirmed_ms']}]
    assert 0 < best['latency_confirmed_ms'] <= 2000
    assert 0.0 <= summary['final_training']['val_top1'] <= 1.0
    lines = (out / 'candidates.csv').read_text().splitlines()
    assert lines[0].startswith('id,parent_id,origin,status') and len(lines) == len(after) + 1
    assert (out / 'pareto.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    events = read_events(progress)
    assert events[0]['state'] == 'running' and events[-1]['state'] == 'done'
    assert events[-1]['output'] == str(out) and events[-1]['round'] == 2
    assert events[-1]['best_accuracy'] == best['proxy_accuracy']
    assert {'state', 'round', 'candidates', 'best_accuracy', 'best_latency_ms', 'budget_ms',
            'output', 'message'} <= set(events[-1])


@pytest.mark.slow
def test_sigterm_cancels_cleanly_with_exit_code_3(data, tmp_path, ros_env):
    store, out, progress = tmp_path / 's.db', tmp_path / 'out', tmp_path / 'p.jsonl'
    args = cli_args(data, store, out, '--progress-jsonl', str(progress), rounds=20)
    proc = subprocess.Popen(args, env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: any(r.status == 'training' for r in store_rows(store)), proc,
             what='a candidate in training')
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, output[-3000:]
    assert 'cancelled' in output
    events = read_events(progress)
    assert events[-1]['state'] == 'cancelled' and 'resume' in events[-1]['message']
    rows = store_rows(store)
    assert rows and not [r for r in rows if r.status == 'training']
    conn = sqlite3.connect(store)
    assert conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    conn.close()
    assert json.loads((out / 'summary.json').read_text())['state'] == 'cancelled'


@pytest.mark.slow
def test_tiny_search_on_a_real_local_ray_cancelled_then_resumed(data, tmp_path, ros_env):
    store, out, progress = tmp_path / 'r.db', tmp_path / 'out', tmp_path / 'p.jsonl'
    args = cli_args(data, store, out, '--backend', 'ray', '--workers', '2',
                    '--progress-jsonl', str(progress), population=2, rounds=1)
    proc = subprocess.Popen(args, env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: any(r.status == 'training' for r in store_rows(store)), proc,
             what='a candidate training on Ray')
    proc.send_signal(signal.SIGTERM)  # ray.init must not have replaced our handler
    output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 3, output[-3000:]
    assert read_events(progress)[-1]['state'] == 'cancelled'
    resumed = subprocess.run(args, env=ros_env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['state'] == 'done' and summary['backend']['backend'] == 'ray'
    assert summary['counts']['done'] == 3 and summary['counts']['training'] == 0
    for name in ('best.safetensors', 'best_genome.json', 'candidates.csv', 'pareto.png'):
        assert (out / name).is_file(), name


def test_impossible_budget_stops_with_the_smallest_latency_seen(data, tmp_path):
    from vas_ros.search.engine import BudgetUnreachable
    from vas_ros.search.runner import SearchSettings, run_search

    settings = SearchSettings(
        family='tvn', data=str(data), budget_ms=0.001, store=str(tmp_path / 'b.db'),
        out=str(tmp_path / 'out'), population=2, rounds=1, max_rejections=4,
        space_options=SPACE, progress=False, latency_repeats=2)
    with pytest.raises(BudgetUnreachable) as info:
        run_search(settings)
    rows = store_rows(tmp_path / 'b.db')
    assert len(rows) == 4 and {r.status for r in rows} == {'rejected'}
    closest = min(rows, key=lambda r: r.latency_ms)  # flow time, if any, included
    assert closest.error.startswith('latency ') and f'closest: {closest.error}' in str(info.value)
    assert 'over 2x the 0.001 ms budget' in str(info.value)


def test_foreign_store_and_bad_options_are_one_line_errors(data, tmp_path, ros_env):
    store = tmp_path / 'other.db'
    SearchStore.open(store, {'family': 'evanet', 'data': str(data), 'budget_ms': 1.0,
                             'seed': 0, 'config': {}}).close()
    before = store.read_bytes()
    result = subprocess.run(cli_args(data, store, tmp_path / 'out'), env=ros_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'belongs to a evanet search, not tvn' in result.stderr
    assert 'Traceback' not in result.stderr
    assert store.read_bytes() == before
    bad = subprocess.run(cli_args(data, tmp_path / 'n.db', tmp_path / 'out') +
                         ['--space-option', 'max_filter=8'], env=ros_env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'tvn search space: unknown options' in bad.stderr


@pytest.mark.parametrize('extra, words', [
    (['--device', 'bogus'], "device 'bogus': expected auto, cpu"),
    (['--threads', '-1'], '--threads must be between 1 and'),
    (['--threads', '0'], '--threads must be between 1 and'),
    (['--latency-threads', '100000'], '--latency-threads must be between 1 and'),
    (['--tournament', '0'], '--tournament must be >= 1'),
    (['--lr', 'nan'], '--lr must be a finite number > 0'),
    (['--proxy-seconds', '-1'], '--proxy-seconds must be a finite number > 0'),
    (['--final-steps', '0'], '--final-steps must be >= 1'),
    (['--workers', '0'], '--workers must be >= 1'),
    (['--latency-budget-ms', 'inf'], '--latency-budget-ms must be a finite number'),
])
def test_bad_settings_are_refused_before_the_store_exists(data, tmp_path, extra, words,
                                                          capsys):
    from vas_ros.cli import main

    store = tmp_path / 'never.db'
    assert main(cli_args(data, store, tmp_path / 'out')[3:] + extra) == 2
    err = capsys.readouterr().err
    assert words in err and 'Traceback' not in err
    assert not store.exists()  # a corrected rerun starts clean


def test_out_must_not_be_the_store_the_data_or_another_searchs_folder(data, tmp_path,
                                                                      capsys):
    from vas_ros.cli import main

    cases = [(tmp_path / 'a.db', tmp_path / 'a.db', 'is the --store path'),
             (tmp_path / 'b.db', data / 'train' / 'runs', 'is inside the data set')]
    for store, out, words in cases:
        assert main(cli_args(data, store, out)[3:]) == 2
        assert words in capsys.readouterr().err
        assert not store.exists() and not out.exists()
    # A folder that holds another search's results is refused; its own store resumes.
    out = tmp_path / 'shared_out'
    out.mkdir()
    (out / 'search_store.txt').write_text(str(tmp_path / 'first.db') + '\n')
    (out / 'best.safetensors').write_bytes(b'kept')
    assert main(cli_args(data, tmp_path / 'second.db', out)[3:]) == 2
    assert 'holds the results of another search' in capsys.readouterr().err
    assert (out / 'best.safetensors').read_bytes() == b'kept'
    assert not (tmp_path / 'second.db').exists()


def test_a_damaged_store_is_exit_code_2_and_left_as_it_was(data, tmp_path, capsys):
    from test_search_store import _damage_one_page, fill_store

    from vas_ros.cli import main

    store = tmp_path / 'damaged.db'
    fill_store(store)
    damaged = _damage_one_page(store)
    assert main(cli_args(data, store, tmp_path / 'out')[3:]) == 2
    err = capsys.readouterr().err
    assert 'the store is damaged' in err and 'Traceback' not in err
    assert store.read_bytes() == damaged
