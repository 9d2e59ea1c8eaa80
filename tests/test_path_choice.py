"""`--path auto`: measured on this machine, never slower than eager, cached, agreeing."""

from __future__ import annotations

import json

import pytest
import torch

from vas_ros.errors import VasError
from vas_ros.models.factory import resolve_arch
from vas_ros.models.path_choice import choose_path


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    arch = resolve_arch('tvn_tiny')
    return arch.build(5).eval(), arch.input_spec()


def test_auto_picks_the_fastest_agreeing_path_never_slower_than_eager(tiny, tmp_path):
    model, spec = tiny
    cache = tmp_path / 'paths.json'
    choice = choose_path(model, spec, 'cpu', threads=1, rounds=6, cache=cache)
    assert 'eager' in choice.medians_ms and choice.path in choice.medians_ms
    assert choice.medians_ms[choice.path] <= choice.medians_ms['eager']
    assert choice.medians_ms[choice.path] == min(choice.medians_ms.values())
    assert not choice.cached
    # Cached per model and machine: the second call measures nothing.
    again = choose_path(model, spec, 'cpu', threads=1, rounds=6, cache=cache)
    assert again.cached and again.path == choice.path
    assert len(json.loads(cache.read_text())) == 1
    # Another thread count is another entry.
    other = choose_path(model, spec, 'cpu', threads=2, rounds=2, cache=cache)
    assert not other.cached and len(json.loads(cache.read_text())) == 2


def test_the_auto_runner_agrees_with_eager(tiny, tmp_path, monkeypatch):
    from vas_ros.models.inference import prepare_inference
    from vas_ros.models.introspect import example_inputs
    from vas_ros.models.path_choice import prepare_path

    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    model, spec = tiny
    auto = prepare_path(model, spec, 'auto', 'cpu', threads=1)
    assert auto.path in ('eager', 'channels_last', 'bf16', 'onnxruntime')
    assert auto.choice.medians_ms
    clips = example_inputs(spec, batch=4)
    eager = prepare_inference(model, spec, 'eager', 'cpu')
    assert torch.equal(auto(*clips).argmax(-1), eager(*clips).argmax(-1))
    assert (tmp_path / 'vas_ros' / 'inference_paths.json').is_file()


def test_a_path_that_disagrees_is_refused(tiny, tmp_path, monkeypatch):
    from vas_ros.models import path_choice

    monkeypatch.setattr(path_choice, 'AGREEMENT_TOLERANCE', -1.0)  # nothing agrees now
    model, spec = tiny
    choice = choose_path(model, spec, 'cpu', threads=1, rounds=2, cache=tmp_path / 'c.json',
                         candidates=('eager', 'channels_last'))
    assert choice.path == 'eager'
    assert 'disagrees' in choice.refused['channels_last']


def test_bad_requests_and_an_unwritable_cache(tiny, tmp_path):
    model, spec = tiny
    with pytest.raises(VasError, match='candidates must be some of'):
        choose_path(model, spec, candidates=('warp',), cache=tmp_path / 'c.json')
    with pytest.raises(VasError, match='rounds must be >= 1'):
        choose_path(model, spec, rounds=0, cache=tmp_path / 'c.json')
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')  # no one, root included, can create a folder in it
    with pytest.warns(UserWarning, match='not written'):
        choice = choose_path(model, spec, threads=1, rounds=2, cache=blocker / 'c.json')
    assert choice.path and blocker.read_text() == 'not a folder'


def test_engine_with_auto_reports_the_chosen_path(tmp_path, monkeypatch):
    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.perception.engine import InferenceEngine

    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    arch = resolve_arch('tvn_tiny')
    path = save_checkpoint(tmp_path / 'm.safetensors', arch.build(3), arch, ['a', 'b', 'c'],
                           arch.input_spec())
    engine = InferenceEngine(path, device='cpu', path='auto', num_threads=1)
    assert engine.path in ('eager', 'channels_last', 'bf16', 'onnxruntime')
    assert engine.describe()['path'] == engine.path


@pytest.mark.parametrize('entry', [{'path': 'onnxruntime', 'medians_ms': 'abc'},
                                   {'path': 'onnxruntime', 'medians_ms': 5},
                                   {'path': 'bf16', 'medians_ms': {'bf16': -1, 'eager': 'x'}},
                                   {'path': 'eager', 'medians_ms': {'eager': 9.0,
                                                                    'channels_last': 1.0}},
                                   ['eager'], 'eager'])
def test_a_nonsense_cache_entry_is_measured_again(tiny, tmp_path, entry):
    from vas_ros.models.path_choice import cache_key

    model, spec = tiny
    cache = tmp_path / 'c.json'
    cache.write_text(json.dumps({cache_key(model, spec, 'cpu', 1): entry}))
    choice = choose_path(model, spec, 'cpu', threads=1, rounds=2, cache=cache)
    assert not choice.cached and choice.medians_ms['eager'] > 0
    assert choose_path(model, spec, 'cpu', threads=1, rounds=2, cache=cache).cached


def test_a_choice_cached_by_older_path_code_is_not_reused(tiny, monkeypatch):
    import vas_ros.models.inference as inference
    from vas_ros.models.path_choice import cache_key

    model, spec = tiny
    now = cache_key(model, spec, 'cpu', 1)
    assert cache_key(model, spec, 'cpu', 1) == now  # stable for the same code
    monkeypatch.setattr(inference, 'PATHS_REVISION', inference.PATHS_REVISION - 1)
    assert cache_key(model, spec, 'cpu', 1) != now
