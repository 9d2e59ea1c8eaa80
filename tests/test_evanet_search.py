"""A tiny EvaNet search end to end through `vas-ros search evanet`, then an ensemble of it."""

import json
import sqlite3

import pytest

from vas_ros.cli import main
from vas_ros.models import evanet
from vas_ros.models.checkpoint import load_checkpoint


@pytest.fixture(scope='module')
def search_run(tmp_path_factory):
    from vas_ros.data.synth import write_synthetic_dataset

    root = tmp_path_factory.mktemp('evanet_search')
    data = write_synthetic_dataset(root / 'data', per_class=2, seed=0, size=48, frames=8,
                                   progress=False)
    store, out = root / 'search.sqlite', root / 'out'
    argv = ['search', 'evanet', '--data', str(data), '--latency-budget-ms', '5000',
            '--population', '3', '--rounds', '2', '--store', str(store), '--out', str(out),
            '--proxy-steps', '2', '--batch-size', '4', '--final-epochs', '1',
            '--final-steps', '2', '--latency-repeats', '2', '--seed', '1', '--quiet',
            '--space-option', 'frames=4', '--space-option', 'size=32',
            '--space-option', 'frame_stride=1', '--progress-jsonl', str(root / 'p.jsonl')]
    assert main(argv) == 0
    return {'data': data, 'store': store, 'out': out, 'root': root}


@pytest.mark.slow
def test_search_evanet_end_to_end(search_run):
    out = search_run['out']
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['family'] == 'evanet'
    best = json.loads((out / 'best_genome.json').read_text())
    assert best['family'] == 'evanet'
    assert evanet.validate(best['genome']) == best['genome']
    loaded = load_checkpoint(out / 'best.safetensors')
    assert loaded.arch.family == 'evanet' and loaded.spec.frames == 4
    with sqlite3.connect(search_run['store']) as conn:
        rows = conn.execute("SELECT origin, genome FROM candidates WHERE status = 'done'")
        origins = [r[0] for r in rows]
    assert len(origins) == 5 and 'mutation' in origins
    events = [json.loads(line) for line in (search_run['root'] / 'p.jsonl').read_text()
              .splitlines()]
    assert events[-1]['state'] == 'done'
