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
    data = write_synthetic_dataset(root / 'data', per_class=1, seed=0, size=40, frames=4,
                                   progress=False)
    store, out = root / 'search.sqlite', root / 'out'
    argv = ['search', 'evanet', '--data', str(data), '--latency-budget-ms', '5000',
            '--population', '2', '--rounds', '1', '--store', str(store), '--out', str(out),
            '--proxy-steps', '2', '--batch-size', '4', '--final-epochs', '1',
            '--final-steps', '2', '--latency-repeats', '1', '--seed', '1', '--quiet',
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
    assert evanet.EvaGenome.normalise(best['genome']) == best['genome']
    loaded = load_checkpoint(out / 'best.safetensors')
    assert loaded.arch.family == 'evanet' and loaded.spec.frames == 4
    with sqlite3.connect(search_run['store']) as conn:
        rows = conn.execute("SELECT origin, genome FROM candidates WHERE status = 'done'")
        origins = [r[0] for r in rows]
    assert len(origins) == 3 and 'mutation' in origins
    events = [json.loads(line) for line in (search_run['root'] / 'p.jsonl').read_text()
              .splitlines()]
    assert events[-1]['state'] == 'done'


@pytest.mark.slow
def test_ensemble_of_the_search_runs_everywhere_a_model_runs(search_run):
    """vas-ros ensemble on the search store: RGB + flow members, one checkpoint that
    evaluate() and the inference engine run, and a rerun that reuses trained members."""
    import numpy as np

    from vas_ros.data.datasets import open_dataset
    from vas_ros.data.synth import render_clip
    from vas_ros.perception.engine import InferenceEngine
    from vas_ros.search.store import SearchStore
    from vas_ros.training.evaluate import evaluate

    data, out = search_run['data'], search_run['root'] / 'ensemble'
    argv = ['ensemble', '--from-store', str(search_run['store']), '--top', '1',
            '--data', str(data), '--out', str(out), '--flow', '--epochs', '1',
            '--max-steps', '1', '--batch-size', '4', '--quiet', '--json']
    assert main(argv) == 0
    report = json.loads((out / 'report.json').read_text())
    with SearchStore.open(search_run['store']) as store:
        done = [r for r in store.candidates() if r.status == 'done']
    best = max(done, key=lambda r: (r.accuracy, -r.latency_ms, -r.id))
    assert report['members'][0]['candidate_id'] == best.id
    assert [m['candidate_id'] for m in report['members']] == [best.id, best.id]
    assert [m['streams'] for m in report['members']] == [['rgb'], ['flow']]
    assert (out / 'ensemble.png').stat().st_size > 0
    loaded = load_checkpoint(out / 'ensemble.safetensors')
    assert loaded.arch.family == 'ensemble' and loaded.spec.streams == ('rgb', 'flow')
    assert len(loaded.model.members) == 2
    # evaluate() on the saved checkpoint reproduces the report, member by member.
    result = evaluate(loaded.model, open_dataset(data, 'val', loaded.spec,
                                                 classes=loaded.classes))
    assert result['top1'] == pytest.approx(report['ensemble']['val_top1'])
    assert [m['top1'] for m in result['members']] == pytest.approx(
        [m['val_top1'] for m in report['members']])
    # The inference engine (and so the ROS node) loads it like any model.
    engine = InferenceEngine(out / 'ensemble.safetensors', device='cpu')
    clip = render_clip('grow', np.random.default_rng(0), size=40, frames=4)
    prediction = engine.infer(clip)
    assert prediction.label in loaded.classes and prediction.latency_ms['flow'] > 0
    # A rerun reuses the trained members: their marker files are not rewritten.
    markers = sorted((out / 'members').glob('*/member.json'))
    stamps = [m.stat().st_mtime_ns for m in markers]
    assert len(markers) == 2
    assert main(argv) == 0
    assert [m.stat().st_mtime_ns for m in markers] == stamps
