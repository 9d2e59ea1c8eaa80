"""What keeps an on-robot search inside the machine and near its budget: genome costing on
the meta device, the memory cap, the learned latency screen, the random-search control,
weight inheritance and the longer training of the best (multi-fidelity)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from toy_space import ToySpace

from vas_ros.errors import VasError
from vas_ros.models.footprint import estimate_footprint
from vas_ros.search.cost_model import PRIOR, LatencyModel, features, fit_latency_model
from vas_ros.search.engine import EngineConfig, Evolution, SearchCancelled, Verdict
from vas_ros.search.records import EvalResult
from vas_ros.search.runner import (
    Footprints,
    LatencyConstraint,
    LatencyScreen,
    MemoryConstraint,
    SearchSettings,
    promoted,
    screen_report,
)
from vas_ros.search.store import CandidateRecord, SearchStore

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# The genome from issue 12: valid in the published TVN space, and the OOM killer took a
# 24 GB search process when it was built.
HUGE = {'family': 'tvn', 'genome': {
    'frames': 5, 'size': 256, 'frame_stride': 2, 'dropout': 0.5, 'blocks': [
        {'spatial_type': 'depth', 'spatial_kernel': 5, 'spatial_stride': 1,
         'temporal_type': 'maxpool', 'temporal_kernel': 1, 'temporal_stride': 1,
         'filters': 1024, 'expand': 8, 'repeats': 5, 'se_ratio': 0.0,
         'context_gating': True, 'skip': True},
        {'spatial_type': 'maxpool', 'spatial_kernel': 2, 'spatial_stride': 4,
         'temporal_type': 'avgpool', 'temporal_kernel': 1, 'temporal_stride': 3,
         'filters': 48, 'expand': 6, 'repeats': 1, 'se_ratio': 0.126,
         'context_gating': True, 'skip': True}]}}


def _small_presets() -> list[str]:
    from vas_ros.models.registry import presets

    return sorted(name for name, arch in presets().items()
                  if estimate_footprint(arch, training=False).macs < 1e9)


# ------------------------------------------------------------------------------ footprint
@pytest.mark.parametrize('name', _small_presets())
def test_meta_costing_counts_what_running_the_model_counts(name):
    from vas_ros.models.factory import resolve_arch
    from vas_ros.models.introspect import count_macs, count_params

    arch = resolve_arch(name)
    cost = estimate_footprint(arch, 8)
    model = arch.build(8)
    assert cost.params == count_params(model)
    assert cost.macs == count_macs(model, arch.input_spec())
    assert cost.macs == (cost.macs_conv2d + cost.macs_depthwise + cost.macs_conv3d
                         + cost.macs_matmul)
    assert cost.training_bytes(16) > cost.training_bytes(8) > cost.inference_bytes() > 0


def test_training_memory_estimate_covers_the_measured_peak(tmp_path):
    """Real training steps in a fresh process stay under the estimate, and the estimate
    is not wildly pessimistic (it decides what a robot may search)."""
    script = (
        'import sys, torch\n'
        'from vas_ros.peak_memory import peak_rss_mb\n'
        'torch.set_num_threads(1)\n'
        'from vas_ros.models.factory import resolve_arch\n'
        'from vas_ros.models.introspect import example_inputs\n'
        'arch = resolve_arch(sys.argv[1]); x = example_inputs(arch.input_spec(), batch=8)\n'
        'base = peak_rss_mb()\n'
        'm = arch.build(8); opt = torch.optim.AdamW(m.parameters())\n'
        'for _ in range(2):\n'
        '    loss = m(*x).logsumexp(1).mean(); opt.zero_grad(); loss.backward(); opt.step()\n'
        'print(int((peak_rss_mb() - base) * 2**20))\n')
    for name in ('tvn_tiny', 'evanet_tiny'):
        measured = int(subprocess.run([sys.executable, '-c', script, name], check=True,
                                      capture_output=True, text=True).stdout.split()[-1])
        estimate = estimate_footprint(name, 8).training_bytes(8)
        # Conservative on purpose: the measured peak depends on threads and the allocator,
        # the estimate does not (measured 456 MB for tvn_tiny, 204 MB for evanet_tiny).
        assert measured <= estimate <= 12 * measured + 512 * 2**20, (name, measured,
                                                                      estimate)


def test_huge_genome_is_costed_and_refused_while_the_process_stays_small(tmp_path):
    genome = tmp_path / 'huge.json'
    genome.write_text(json.dumps(HUGE))
    # The child reads its own peak (VmHWM of its address space) as it exits. Neither
    # RUSAGE_CHILDREN nor os.wait4 will do: Linux carries the parent's peak across exec into
    # the child's ru_maxrss, so a test process that has grown to 4 GB in a full run would
    # make any child look 4 GB big.
    peak_file = tmp_path / 'peak_kb'
    proc = subprocess.run([sys.executable, '-c', _PEAK_REPORTING_CLI, str(peak_file), 'models',
                           'info', str(genome), '--json'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    peak_kb = int(peak_file.read_text())
    described = json.loads(out)
    assert described['params'] > 600e6 and described['macs'] > 1e14
    assert described['memory']['inference_mb'] > 20_000
    assert described['memory']['train_mb'] > 1e6
    assert peak_kb < 1.5 * 2**20, f'models info grew to {peak_kb / 2**20:.1f} GB'

    cap = MemoryConstraint(Footprints('tvn', 8), cap_mb=4096, batch=8)
    verdict = cap(HUGE['genome'])
    assert not verdict.ok and verdict.reason.startswith('memory: training at batch 8')
    assert verdict.metrics['memory_mb'] > 4096 and 'over the 4,096 MB cap' in verdict.reason
    assert cap(_preset('tvn_tiny')).ok


# Runs `vas-ros ARGS...` and writes the peak resident memory of this process alone (kB) to
# the file named first: the high-water mark of the address space exec gave it.
_PEAK_REPORTING_CLI = """
import atexit, re, sys
peak_file = sys.argv.pop(1)

def report():
    status = open('/proc/self/status').read()
    open(peak_file, 'w').write(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))

atexit.register(report)
from vas_ros.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _preset(name: str) -> dict:
    from vas_ros.models.factory import resolve_arch

    return resolve_arch(name).genome.to_dict()


def test_estimate_footprint_refuses_bad_input():
    with pytest.raises(VasError, match='num_classes'):
        estimate_footprint('tvn_tiny', 0)
    with pytest.raises(VasError):
        estimate_footprint({'family': 'tvn', 'genome': {'frames': 0}})


# ----------------------------------------------------------------------------- cost model
def _fake_footprint(macs: float, depth: float, ops: float, flow: float = 0.0):
    """The fields `features` reads, for a made-up device's made-up networks."""
    return SimpleNamespace(macs_conv2d=macs, macs_depthwise=depth, macs_conv3d=0.0,
                           macs_matmul=0.0, bytes_written=macs / 10, ops=ops,
                           flow_pixels=flow)


def test_latency_model_learns_a_device_from_measurements():
    truth = (0.2, 1 / 50e6, 1 / 4e6, 0.0, 0.0, 1 / 8e6, 0.02, 0.0)
    rng = random.Random(0)
    samples = []
    for _ in range(30):
        x = features(_fake_footprint(rng.uniform(1e6, 5e8), rng.uniform(1e5, 5e7),
                                     rng.randint(20, 400)))
        samples.append((x, sum(c * v for c, v in zip(truth, x))))
    assert fit_latency_model([]).kind == 'prior'
    one = fit_latency_model(samples[:1])
    assert one.kind == 'scaled' and one.predict(samples[0][0]) == pytest.approx(samples[0][1])
    model = fit_latency_model(samples[:20])
    assert model.kind == 'fitted'
    errors = [abs(model.predict(x) - y) / y for x, y in samples[20:]]
    assert max(errors) < 0.02, errors
    # The prior alone is off by a large factor on this made-up device.
    prior = LatencyModel(PRIOR)
    assert max(abs(prior.predict(x) - y) / y for x, y in samples[20:]) > 0.3
    assert model.to_dict()['kind'] == 'fitted'


def test_latency_model_learns_the_cost_of_flow_and_never_prices_it_at_zero():
    truth = (0.2, 1 / 50e6, 1 / 4e6, 0.0, 0.0, 1 / 8e6, 0.02, 1 / 2e4)
    rng = random.Random(1)

    def sample(flow: bool):
        x = features(_fake_footprint(rng.uniform(1e6, 5e8), rng.uniform(1e5, 5e7),
                                     rng.randint(20, 400),
                                     rng.choice([8 * 32 * 32, 8 * 64 * 64]) if flow else 0))
        return x, sum(c * v for c, v in zip(truth, x))

    rgb_only = [sample(False) for _ in range(15)]
    model = fit_latency_model(rgb_only)
    x, _ = sample(True)
    no_flow = (*x[:-1], 0.0)
    # Fitted without any flow model timed, flow still costs what the scaled prior says.
    assert model.predict(x) - model.predict(no_flow) > 0.5 * x[-1] * PRIOR[-1] * 0.1
    mixed = rgb_only + [sample(True) for _ in range(15)]
    model = fit_latency_model(mixed)
    assert model.kind == 'fitted'
    held = [sample(True) for _ in range(10)]
    assert max(abs(model.predict(x) - y) / y for x, y in held) < 0.02


def test_latency_model_ignores_empty_measurements_and_is_deterministic():
    x = features(_fake_footprint(1e8, 1e6, 100))
    assert fit_latency_model([(x, None), (x, 0.0)]).kind == 'prior'
    samples = [(features(_fake_footprint(1e7 * i, 1e5 * i, 10 * i)), 1.0 + i)
               for i in range(1, 15)]
    assert fit_latency_model(samples) == fit_latency_model(list(samples))


# ------------------------------------------------------------------- engine: screen, strategy
HEADER = {'family': 'toy', 'data': '/nowhere', 'budget_ms': 10.0, 'seed': 0,
          'config': {}}


def toy_space() -> ToySpace:
    def random_genome(rng):
        return {'x': rng.randint(0, 100)}

    def mutate(genome, rng):
        return {'x': max(0, genome['x'] + rng.choice([-9, -5, 5, 9]))}

    return ToySpace(random_genome, mutate)


def toy_evaluate(records, should_stop):
    for rec in records:
        if should_stop():
            raise SearchCancelled()
        yield rec, EvalResult(ok=True, accuracy=rec.genome['x'] / 100, seconds=0.0, steps=1)


def latency(genome):
    """'Measured' latency: x ms; the budget is 40 ms."""
    ms = float(genome['x'])
    return Verdict(ms <= 40, {'latency_ms': ms}, '' if ms <= 40 else f'{ms} ms over', ms)


class LearnedScreen:
    """Predicts x times the mean measured ms/x so far (1 ms per x before any measurement
    would be right; it starts at 0.25 and must learn)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, genome, history):
        self.calls += 1
        seen = [r for r in history if r.latency_ms is not None and r.genome['x'] > 0]
        per_x = (sum(r.latency_ms / r.genome['x'] for r in seen) / len(seen)
                 if seen else 0.25)
        predicted = per_x * genome['x']
        return predicted / 40.0, {'predicted_ms': predicted}


def run_toy(tmp_path, name, *, strategy='evolution', screen=None, rounds=20,
            should_stop=None, seeds=()):
    store = SearchStore.open(tmp_path / name, HEADER)
    config = EngineConfig(population=4, rounds=rounds, tournament=2, seed=3,
                          strategy=strategy, max_rejections=50)
    engine = Evolution(toy_space(), store, config, toy_evaluate, constraints=[latency],
                       screen=screen, seeds=seeds, should_stop=should_stop)
    try:
        engine.run()
        return engine, store.candidates()
    except SearchCancelled:
        return engine, None
    finally:
        store.close()


def test_screen_aims_proposals_inside_the_budget_after_a_few_measurements(tmp_path):
    _, blind = run_toy(tmp_path, 'blind.db')
    engine, aimed = run_toy(tmp_path, 'aimed.db', screen=LearnedScreen())

    def share_in(records):
        later = [r for r in records if r.latency_ms is not None][5:]
        return sum(r.latency_ms <= 40 for r in later) / len(later)

    assert engine.screened > 0
    assert share_in(aimed) >= 0.9 > share_in(blind)
    assert all(r.predicted_ms is not None for r in aimed)
    report = screen_report(aimed, 40.0)
    assert report['in_budget_share_after_warmup'] == pytest.approx(share_in(aimed), abs=1e-4)
    assert report['cost_model_median_rel_error'] < 0.01  # 1 ms per x is learned exactly


def test_screened_search_resumes_to_the_same_proposals(tmp_path):
    _, straight = run_toy(tmp_path, 'full.db', screen=LearnedScreen())
    evaluated = []

    def stop_part_way():
        evaluated.append(1)
        return len(evaluated) > 60

    engine, partial = run_toy(tmp_path, 'part.db', screen=LearnedScreen(),
                              should_stop=stop_part_way)
    assert partial is None, 'the search should have been cancelled part-way'
    _, resumed = run_toy(tmp_path, 'part.db', screen=LearnedScreen())
    assert [(r.genome_hash, r.status, r.predicted_ms, r.parent_id) for r in resumed] == \
        [(r.genome_hash, r.status, r.predicted_ms, r.parent_id) for r in straight]


def test_random_strategy_is_the_same_loop_with_mutation_off(tmp_path):
    seed = {'x': 10}
    _, evolved = run_toy(tmp_path, 'evo.db', seeds=[seed])
    _, random_ = run_toy(tmp_path, 'rnd.db', strategy='random', seeds=[seed])
    assert {r.origin for r in evolved} == {'seed', 'random', 'mutation'}
    assert {r.origin for r in random_} == {'seed', 'random'}
    assert all(r.parent_id is None for r in random_)
    done = [r for r in random_ if r.status == 'done']
    assert len(done) == 24  # population + rounds, the same count as evolution
    with pytest.raises(VasError, match='strategy'):
        EngineConfig(population=2, rounds=1, tournament=1, strategy='grid')


# --------------------------------------------------------------------- runner pieces
def test_latency_screen_predicts_from_measured_tvn_genomes():
    fps = Footprints('tvn', 8)
    screen = LatencyScreen(fps, budget_ms=10.0)
    small, big = _preset('tvn_tiny'), _preset('tvn_small')
    ratio_prior, metrics = screen(small, [])
    assert ratio_prior > 0 and metrics['predicted_ms'] == pytest.approx(10.0 * ratio_prior,
                                                                         rel=1e-3)
    measured = CandidateRecord(id=0, parent_id=None, origin='seed', genome=small,
                               genome_hash='x', latency_ms=20.0)
    ratio_small, _ = screen(small, [measured])
    ratio_big, _ = screen(big, [measured])
    assert ratio_small == pytest.approx(2.0, rel=1e-3)  # scaled to the one measurement
    assert ratio_big > 3 * ratio_small  # 9x the MACs


def test_flow_models_pay_for_their_flow_in_the_screen_and_the_budget():
    rgb = _preset('tvn_tiny')
    flow = {**rgb, 'stream': 'flow'}
    fps = Footprints('tvn', 8)
    assert fps(rgb, training=False).flow_pixels == 0
    assert fps(flow, training=False).flow_pixels == 8 * 64 * 64
    screen = LatencyScreen(fps, budget_ms=10.0)
    # Before any measurement the prior prices the flow; the flow model's first conv is
    # cheaper (2 channels in, not 3), yet the flow makes it the more expensive one.
    assert screen(flow, [])[1]['predicted_ms'] > screen(rgb, [])[1]['predicted_ms'] + 1.0
    # The measured latency is model + flow: with a budget no model meets, the reason says
    # how much of the miss was flow.
    verdict = LatencyConstraint('tvn', 1e-3, 8, threads=1, repeats=1, footprints=fps)(flow)
    assert not verdict.ok and 'ms flow' in verdict.reason
    rgb_verdict = LatencyConstraint('tvn', 1e-3, 8, threads=1, repeats=1)(rgb)
    assert not rgb_verdict.ok and 'flow' not in rgb_verdict.reason


def test_promoted_takes_the_best_third_by_proxy_fitness():
    def rec(i, acc, status='done', ms=5.0):
        return CandidateRecord(id=i, parent_id=None, origin='random', genome={},
                               genome_hash=str(i), status=status, accuracy=acc, latency_ms=ms)

    records = [rec(0, 0.2), rec(1, 0.5), rec(2, 0.4), rec(3, 0.9, 'rejected'),
               rec(4, 0.5, ms=2.0), rec(5, 0.1), rec(6, 0.3)]
    assert [r.id for r in promoted(records, 1 / 3)] == [4, 1]
    assert [r.id for r in promoted(records, 0.5)] == [4, 1, 2]
    assert promoted(records, 0) == [] and promoted(records[:1], 1.0) == []
    # A long search promotes at most `most` (never fewer than 2), however many it trained.
    many = [rec(i, i / 100) for i in range(90)]
    assert len(promoted(many, 1 / 3)) == 30
    assert [r.id for r in promoted(many, 1 / 3, most=6)] == [89, 88, 87, 86, 85, 84]
    assert len(promoted(many, 1 / 3, most=1)) == 2
    with pytest.raises(VasError, match='--promote-max must be >= 2'):
        SearchSettings(family='tvn', data='d', budget_ms=10, store='s', out='o',
                       promote_max=1).check()



def test_the_longer_rung_trains_the_best_from_scratch(tmp_path):
    """An inherited proxy fitness also counts the ancestors' training, so the finalists
    are retrained from random weights for proxy + promote steps, never from a weights
    file (the parent's or their own), and the winner is the best of that rung."""
    from vas_ros.search.runner import PeakMemory, _promote

    tasks = []

    class RecordingBackend:  # the real local backend would train; here only the requests
        def map_unordered(self, name, items, should_stop):
            for key, task in items:
                tasks.append(task)
                yield key, EvalResult(ok=True, accuracy=0.5 + key / 100, seconds=1.0,
                                      steps=task['proxy_steps']).to_dict()

    def payload(rec, steps, init):
        return {'id': rec.id, 'proxy_steps': steps, 'init_weights': init, 'seed': rec.id,
                'save_weights': str(tmp_path / f'{rec.id}.safetensors')}

    settings = SearchSettings(family='toy', data='d', budget_ms=10, store='s', out='o',
                              proxy_steps=40)
    progress = SimpleNamespace(emit=lambda *a, **k: None)
    with SearchStore.open(tmp_path / 'rung.db', HEADER) as store:
        for i, acc in enumerate([0.9, 0.8, 0.1, 0.2, 0.3, 0.15]):
            (tmp_path / f'{i}.safetensors').write_bytes(b'proxy weights')
            store.insert(CandidateRecord(id=i, parent_id=i - 1 if i else None,
                                         origin='mutation' if i else 'seed', genome={},
                                         genome_hash=str(i), status='done', accuracy=acc,
                                         latency_ms=1.0))
        best = _promote(settings, store, RecordingBackend(), payload, 80, progress,
                        None, PeakMemory())
        assert sorted(t['id'] for t in tasks) == [0, 1]  # the best third of 6
        for task in tasks:
            assert task['init_weights'] is None and task['proxy_steps'] == 40 + 80
            assert task['save_weights'] is None and task['seed'] != task['id']
        assert best.id == 1 and store.get(1).accuracy_long == pytest.approx(0.51)
        assert store.get(2).accuracy_long is None

# ------------------------------------------------------------------------ inheritance
def test_child_starts_from_its_parents_tensors_where_shapes_fit(tmp_path):
    import torch
    from safetensors.torch import save_file

    from vas_ros.models.registry import ModelArch
    from vas_ros.training.trainer import inherit_weights

    parent_genome = _preset('tvn_tiny')
    child_genome = json.loads(json.dumps(parent_genome))
    child_genome['blocks'][3]['filters'] = 128  # the last block changes width
    parent = ModelArch('tvn', parent_genome).build(8)
    child = ModelArch('tvn', child_genome).build(8)
    path = tmp_path / 'parent.safetensors'
    save_file({k: v.contiguous() for k, v in parent.state_dict().items()}, str(path))
    share = inherit_weights(child, path)
    assert 0.05 < share < 0.95
    mine, theirs = child.state_dict(), parent.state_dict()
    same = [k for k in mine if k in theirs and mine[k].shape == theirs[k].shape]
    assert same and all(torch.equal(mine[k], theirs[k]) for k in same)
    changed = [k for k in mine if k in theirs and mine[k].shape != theirs[k].shape]
    assert changed, 'the wider block must not be copied'
    assert inherit_weights(ModelArch('tvn', parent_genome).build(8), path) == 1.0
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not a tensor file')
    with pytest.raises(VasError, match='inherited weights'):
        inherit_weights(child, bad)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from vas_ros.data.synth import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp('synth') / 'data', per_class=2,
                                   seed=0, size=32, frames=8, progress=False)


def test_evaluate_task_inherits_and_saves_weights(data, tmp_path):
    from safetensors.torch import load_file

    from vas_ros.search.runner import evaluate_task

    genome = _preset('tvn_tiny')
    genome = {**genome, 'size': 32}
    base = {'id': 0, 'family': 'tvn', 'genome': genome, 'data': str(data),
            'proxy_steps': 2, 'proxy_seconds': None, 'batch_size': 4, 'lr': None,
            'device': 'cpu', 'seed': 1, 'cache_dir': str(tmp_path / 'cache'),
            'space_options': {}}
    first = evaluate_task({**base, 'init_weights': None,
                           'save_weights': str(tmp_path / 'w' / '0.safetensors')})
    assert first['ok'] and first['inherited'] == 0.0
    typed = EvalResult.from_dict(first)  # what the driver rebuilds from the worker's dict
    assert typed.ok and typed.accuracy == first['accuracy'] and typed.steps == 2
    saved = load_file(str(tmp_path / 'w' / '0.safetensors'))
    assert saved
    child = evaluate_task({**base, 'id': 1, 'init_weights': str(tmp_path / 'w' /
                                                                '0.safetensors'),
                           'save_weights': None})
    assert child['ok'] and child['inherited'] == 1.0
    missing = evaluate_task({**base, 'id': 2, 'init_weights': str(tmp_path / 'nope'),
                             'save_weights': None})
    assert missing['ok'] and missing['inherited'] == 0.0


def test_time_budget_ends_a_streak_of_rejections(tmp_path):
    """Without a fitting proposal the search must still stop when its time is up, not
    after max_rejections slow refusals."""
    ticks = iter(range(10_000))
    store = SearchStore.open(tmp_path / 'streak.db', HEADER)
    config = EngineConfig(population=2, rounds=4, tournament=1, time_budget_s=20.0,
                          max_rejections=1000)

    def never(genome):
        return Verdict(False, {'latency_ms': 99.0}, 'over', 99.0)

    engine = Evolution(toy_space(), store, config, toy_evaluate, constraints=[never],
                       clock=lambda: next(ticks) * 1.0)
    result = engine.run()
    records = store.candidates()
    store.close()
    assert result.state == 'time_budget'
    assert 5 < len(records) < 40 and all(r.status == 'rejected' for r in records)


def test_memory_cap_below_any_training_is_refused_up_front():
    with pytest.raises(VasError, match='leaves no room'):
        MemoryConstraint(Footprints('tvn', 8), cap_mb=1, batch=8)


def test_inference_only_footprint_skips_the_training_pass():
    light = estimate_footprint('tvn_tiny', 8, training=False)
    full = estimate_footprint('tvn_tiny', 8)
    assert light.macs == full.macs and light.bytes_written == full.bytes_written
    with pytest.raises(VasError, match='inference only'):
        light.training_bytes(8)
    fps = Footprints('tvn', 8)
    genome = _preset('tvn_tiny')
    assert fps(genome, training=False).train_activation_bytes_per_clip is None
    assert fps(genome).train_activation_bytes_per_clip == full.train_activation_bytes_per_clip


def test_weights_are_kept_only_where_they_can_still_be_used(tmp_path):
    from vas_ros.search.runner import _prune_weights

    def rec(i, acc):
        return CandidateRecord(id=i, parent_id=None, origin='random', genome={},
                               genome_hash=str(i), status='done', accuracy=acc,
                               latency_ms=1.0)

    history = [rec(i, acc) for i, acc in enumerate([0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.15])]
    engine = SimpleNamespace(population=history[4:], history=history)
    for r in history:
        (tmp_path / f'{r.id}.safetensors').write_bytes(b'x')
    (tmp_path / 'notes.safetensors').write_bytes(b'keep: not a candidate file')
    _prune_weights(tmp_path, engine)
    kept = sorted(p.stem for p in tmp_path.glob('*.safetensors'))
    # the population 4-6 (the parents of the next children), not the most accurate (0):
    # the longer training of the best starts from scratch
    assert kept == ['4', '5', '6', 'notes']
    _prune_weights(tmp_path / 'missing', engine)  # no folder yet: nothing to do


# ------------------------------------------------------------------ latency confirmation
def _tiny_tvn_genome() -> dict:
    from vas_ros.models.factory import resolve_arch

    genome = resolve_arch('tvn_tiny').genome.to_dict()
    genome.update(size=32)
    for block in genome['blocks']:
        block.update(filters=8, repeats=1, expand=1)
    return genome


def test_a_winner_that_misses_its_budget_when_re_measured_gives_way(tmp_path):
    """The winner's curse: a candidate accepted on a lucky-low median (recorded here as
    1 ms) is timed again before final training, and the next finalist that really fits
    wins instead. Confirmations are stored, so a resume does not measure them again."""
    from vas_ros.models.factory import resolve_arch
    from vas_ros.search.runner import _confirm_latency, finalists

    big = resolve_arch('tvn_tiny').genome.to_dict() | {'size': 160}
    small = _tiny_tvn_genome()
    probe = LatencyConstraint('tvn', 1.0, 8, threads=1, repeats=3)
    big_ms, small_ms = probe.confirm(big), probe.confirm(small)
    assert big_ms > 3 * small_ms, (big_ms, small_ms)  # over 20x on a 2-core Xeon
    budget = (big_ms * small_ms) ** 0.5
    settings = SearchSettings(family='tvn', data='d', budget_ms=budget, store='s', out='o',
                              latency_repeats=3)
    latency = LatencyConstraint('tvn', budget, 8, threads=1, repeats=3)
    progress = SimpleNamespace(messages=[])
    progress.emit = lambda state, message='', **_: progress.messages.append(message)
    with SearchStore.open(tmp_path / 'confirm.db', HEADER) as store:
        for i, (genome, acc, long) in enumerate([(big, 0.9, 0.8), (small, 0.7, 0.6),
                                                 (small, 0.2, None)]):
            store.insert(CandidateRecord(
                id=i, parent_id=None, origin='random', genome=genome, genome_hash=str(i),
                status='done', accuracy=acc, accuracy_long=long, latency_ms=1.0))
        assert [r.id for r in finalists(store.candidates())] == [0, 1, 2]
        winner, report = _confirm_latency(settings, store, latency, store.get(0), progress)
        assert winner.id == 1 and report['replaced'] and report['met_budget']
        assert [t['id'] for t in report['tried']] == [0, 1]
        first = store.get(0)
        assert first.latency_confirmed_ms > budget >= store.get(1).latency_confirmed_ms
        assert store.get(2).latency_confirmed_ms is None  # not needed, not measured
        stamps = {r.id: r.updated_at for r in store.candidates()}
        again, _ = _confirm_latency(settings, store, latency, store.get(0), progress)
        assert again.id == 1 and {r.id: r.updated_at for r in store.candidates()} == stamps
        assert sum('re-measuring' in m for m in progress.messages) == 2

        # Nothing fits: the best stays the winner and the report says it missed.
        strict = SearchSettings(family='tvn', data='d', budget_ms=small_ms / 100, store='s',
                                out='o')
        kept, missed = _confirm_latency(strict, store, latency, store.get(0), progress)
        assert kept.id == 0 and not missed['met_budget'] and not missed['replaced']
        assert len(missed['tried']) == 3 and 'no finalist of 3' in progress.messages[-1]
