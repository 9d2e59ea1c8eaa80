"""Out-of-distribution data, the background class and calibrated scores (issue 15).

The holdout renderer must stay apart from training; the `none` class must carry no motion
of the actor; temperature scaling must lower the NLL of logits it was not fitted on; the
checkpoint must carry the temperature to every reader; and the node must say `unknown`
when the model says nothing happens.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vas_ros.data import holdout, synth
from vas_ros.errors import CheckpointError, DataError
from vas_ros.models.spec import BACKGROUND_CLASS, UNKNOWN_LABEL, reported_label
from vas_ros.training import calibration

ALL = (*synth.CLASSES, BACKGROUND_CLASS)


# -- the holdout renderer ---------------------------------------------------------------

@pytest.mark.parametrize('label', ALL)
def test_holdout_renders_every_class_deterministically(label):
    a = holdout.render_holdout_clip(label, np.random.default_rng(5), size=48, frames=6)
    b = holdout.render_holdout_clip(label, np.random.default_rng(5), size=48, frames=6)
    c = holdout.render_holdout_clip(label, np.random.default_rng(6), size=48, frames=6)
    assert a.dtype == np.uint8 and a.shape == (6, 48, 48, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 5  # a scene, not a flat frame


def test_holdout_refuses_unknown_classes_and_tiny_clips():
    with pytest.raises(DataError, match='unknown class'):
        holdout.render_holdout_clip('jump', np.random.default_rng(0))
    with pytest.raises(DataError, match='size >= 16'):
        holdout.render_holdout_clip('grow', np.random.default_rng(0), size=8)


def test_holdout_clips_share_no_random_stream_with_training_clips():
    plain = synth.clip_rng(3, 'test', 'grow', 0).random(4)
    salted = synth.clip_rng(3, 'test', 'grow', 0, salt=holdout.SEED_SALT).random(4)
    assert not np.allclose(plain, salted)


def test_the_two_generators_never_share_a_folder(tmp_path):
    ood = synth.write_synthetic_dataset(tmp_path / 'ood', per_class=1, seed=0,
                                        splits=('test',), size=32, frames=4, progress=False,
                                        renderer='holdout')
    assert holdout.is_holdout_data(ood)
    assert json.loads((ood / synth.MARKER).read_text())['generator'] == holdout.GENERATOR
    with pytest.raises(DataError, match='already holds data written by'):
        synth.write_synthetic_dataset(ood, per_class=1, seed=0, splits=('train',), size=32,
                                      frames=4, progress=False)
    train = synth.write_synthetic_dataset(tmp_path / 'train', per_class=1, seed=0,
                                          splits=('train',), size=32, frames=4,
                                          progress=False)
    assert not holdout.is_holdout_data(train)
    with pytest.raises(DataError, match='already holds data written by'):
        synth.write_synthetic_dataset(train, per_class=1, seed=0, splits=('test',), size=32,
                                      frames=4, progress=False, renderer='holdout')
    with pytest.raises(DataError, match='renderer'):
        synth.write_synthetic_dataset(tmp_path / 'x', per_class=1, seed=0, renderer='paint')


def test_training_and_search_refuse_holdout_data(tmp_path):
    from vas_ros.search.runner import SearchSettings, _check_paths
    from vas_ros.training.trainer import train

    ood = synth.write_synthetic_dataset(tmp_path / 'ood', per_class=1, seed=0,
                                        splits=('train', 'val'), size=32, frames=4,
                                        progress=False, renderer='holdout')
    with pytest.raises(DataError, match='out-of-distribution evaluation only'):
        train('tvn_tiny', ood, max_steps=1, progress=False)
    settings = SearchSettings(family='tvn', data=str(ood), budget_ms=30.0,
                              store=str(tmp_path / 'store'), out=str(tmp_path / 'out'))
    with pytest.raises(DataError, match='a search must not see it'):
        _check_paths(settings)


# -- the background class ---------------------------------------------------------------

def test_dataset_classes_with_none_are_sorted_and_written(tmp_path):
    classes = synth.dataset_classes(with_none=True)
    assert list(classes) == sorted(classes) and BACKGROUND_CLASS in classes
    assert synth.dataset_classes() == synth.CLASSES
    root = synth.write_synthetic_dataset(tmp_path / 'd', per_class=1, seed=0,
                                         splits=('train',), size=32, frames=4,
                                         progress=False, with_none=True)
    assert sorted(p.name for p in (root / 'train').iterdir()) == list(classes)


def test_none_clips_hold_an_actor_that_does_not_move():
    for index in range(6):
        _, truth = synth.render_clip_with_truth(BACKGROUND_CLASS,
                                                synth.clip_rng(0, 'train', 'none', index),
                                                size=64, frames=8)
        assert np.ptp(truth['radius']) == 0 and np.ptp(truth['angle']) == 0
        # the centre moves only with the camera (shake), far less than any move class
        assert np.ptp(truth['centre'], axis=0).max() < 0.1 * 64
    _, moving = synth.render_clip_with_truth('move_left', synth.clip_rng(0, 'train',
                                                                         'move_left', 0),
                                             size=64, frames=8)
    assert np.ptp(moving['centre'][:, 0]) > 0.15 * 64


def test_the_none_class_leaves_the_other_classes_clips_unchanged():
    # A None kind is drawn only for `none`: adding the class changed no other clip.
    a = synth.render_clip('grow', np.random.default_rng(1), size=32, frames=4)
    b = synth.render_clip('grow', np.random.default_rng(1), size=32, frames=4)
    assert np.array_equal(a, b)


def test_reported_label_rejects_low_scores_and_the_background_class():
    assert reported_label('grow', 0.9, 0.5) == 'grow'
    assert reported_label('grow', 0.4, 0.5) == UNKNOWN_LABEL
    assert reported_label(BACKGROUND_CLASS, 0.99, 0.0) == UNKNOWN_LABEL


# -- calibration ------------------------------------------------------------------------

def test_ece_matches_a_hand_computed_value():
    probs = [[0.9, 0.1], [0.6, 0.4]]
    # bin (0.866, 0.933]: confidence 0.9, correct 1 -> 0.1; bin (0.533, 0.6]: 0.6, wrong
    # (predicted 0, label 1) -> 0.6. Mean over two clips: 0.35.
    assert calibration.expected_calibration_error(probs, [0, 1]) == pytest.approx(0.35)
    assert calibration.expected_calibration_error(probs, [0, 0]) == pytest.approx(0.25)


def _overconfident(n: int, seed: int):
    """Logits of a 70 %-accurate 4-class model that scores like a 99 % one."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=gen)
    predicted = torch.where(torch.rand(n, generator=gen) < 0.7, labels,
                            torch.randint(0, 4, (n,), generator=gen))
    logits = torch.randn(n, 4, generator=gen)
    logits[torch.arange(n), predicted] += 8.0
    return logits, labels


def test_temperature_scaling_lowers_nll_and_ece_on_held_out_logits():
    fit_logits, fit_labels = _overconfident(400, 0)
    test_logits, test_labels = _overconfident(400, 1)
    t = calibration.fit_temperature(fit_logits, fit_labels)
    assert t > 1.5  # over-confident logits get softened
    before = calibration.nll(test_logits, test_labels)
    after = calibration.nll(test_logits, test_labels, t)
    assert after < 0.7 * before
    report = calibration.calibration_report(test_logits, test_labels, t)
    assert report['ece_after'] < report['ece_before']
    record = calibration.calibrate(fit_logits, fit_labels, split='val')
    assert record['temperature'] == pytest.approx(t) and record['split'] == 'val'


def test_calibration_refuses_bad_logits():
    with pytest.raises(Exception, match='NaN or infinite'):
        calibration.fit_temperature([[float('nan'), 0.0], [0.0, 1.0]], [0, 1])
    with pytest.raises(Exception, match='at least 2'):
        calibration.fit_temperature([[1.0, 0.0]], [0])
    with pytest.raises(Exception, match='labels must lie'):
        calibration.nll([[1.0, 0.0]], [2])


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch

    torch.manual_seed(0)
    arch = resolve_arch('tvn_tiny')
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.safetensors'
    return save_checkpoint(path, arch.build(3), arch, ['a', 'b', 'c'], arch.input_spec())


def test_write_calibration_round_trips_even_in_place(tiny_checkpoint, tmp_path):
    from vas_ros.models.checkpoint import load_checkpoint, write_calibration

    copy = tmp_path / 'copy.safetensors'
    copy.write_bytes(tiny_checkpoint.read_bytes())
    before = load_checkpoint(copy)
    assert before.temperature == 1.0
    write_calibration(copy, {'temperature': 2.5, 'split': 'val'})  # out == in
    after = load_checkpoint(copy)
    assert after.temperature == 2.5 and after.metadata['calibration']['split'] == 'val'
    for (name, a), (_, b) in zip(before.model.state_dict().items(),
                                 after.model.state_dict().items()):
        assert torch.equal(a, b), name
    other = write_calibration(copy, {'temperature': 0.5}, out=tmp_path / 'other.safetensors')
    assert load_checkpoint(other).temperature == 0.5 and load_checkpoint(copy).temperature == 2.5
    for bad in ({'temperature': 0}, {'temperature': float('inf')}, {'temperature': 'hot'},
                {'temperature': True}, [2.0], None, {'temperature': 1e-300},
                {'temperature': 1e300}):
        with pytest.raises(CheckpointError, match='finite, positive'):
            write_calibration(copy, bad)
    assert load_checkpoint(copy).temperature == 2.5  # a refused write lost nothing


def test_the_engine_divides_logits_by_the_temperature(tiny_checkpoint, tmp_path):
    from vas_ros.models.checkpoint import write_calibration
    from vas_ros.perception.engine import InferenceEngine

    hot = write_calibration(tiny_checkpoint, {'temperature': 50.0},
                            out=tmp_path / 'hot.safetensors')
    engine = InferenceEngine(tiny_checkpoint, device='cpu')
    frames = synth.render_clip('grow', np.random.default_rng(0), size=64,
                               frames=engine.spec.frames)
    plain = engine.infer(frames)
    scaled = InferenceEngine(hot, device='cpu').infer(frames)
    assert scaled.label == plain.label
    assert abs(scaled.score - 1 / 3) < abs(plain.score - 1 / 3)  # flatter, same ranking


# -- training, evaluation and the node ---------------------------------------------------

@pytest.fixture(scope='module')
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    train_root = synth.write_synthetic_dataset(root / 'synth', per_class=2, seed=0,
                                               splits=('train', 'val', 'test'), size=64,
                                               frames=16, progress=False)
    ood = synth.write_synthetic_dataset(root / 'ood', per_class=2, seed=0, splits=('test',),
                                        size=64, frames=16, progress=False,
                                        renderer='holdout')
    return train_root, ood


def test_train_stores_a_temperature_and_eval_reports_the_ood_gap(small_data, tmp_path,
                                                                   capsys):
    from vas_ros.cli import main
    from vas_ros.models.checkpoint import load_checkpoint
    from vas_ros.training.trainer import train

    data, ood = small_data
    result = train('tvn_tiny', data, out=tmp_path / 'run', max_steps=4, batch_size=4,
                   progress=False, calibrate=True)
    assert result.calibration['split'] == 'val' and result.calibration['n'] == 16
    loaded = load_checkpoint(result.checkpoint)
    assert loaded.temperature == pytest.approx(result.calibration['temperature'])
    capsys.readouterr()
    rc = main(['eval', str(result.checkpoint), '--data', str(data), '--split', 'test',
               '--ood', str(ood), '--quiet', '--json'])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {'ece', 'nll', 'temperature', 'rejection'} <= set(out)
    assert out['temperature'] == pytest.approx(loaded.temperature)
    assert out['ood']['gap'] == pytest.approx(out['top1'] - out['ood']['top1'])
    assert 0.0 <= out['ood']['ece'] <= 1.0


def test_node_publishes_unknown_when_the_model_says_none(tmp_path):
    from inprocess import RunningNode
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from vas_ros.harness.probe import Probe
    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch
    from vas_ros.msg import ActivityResult
    from vas_ros.nodes.activity_node import ActivityNode

    classes = ['grow', BACKGROUND_CLASS, 'shrink']
    arch = resolve_arch('tvn_tiny')
    model = arch.build(len(classes))
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # the model says `none`, whatever it sees
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 6.0, 0.0]))
    path = save_checkpoint(tmp_path / 'none.safetensors', model, arch, classes,
                           arch.input_spec())
    running = RunningNode(ActivityNode, '/bg', model=str(path), device='cpu', hop_frames=4,
                          num_threads=1)
    probe = Probe('probe_bg')
    try:
        probe.listen('/bg/activity/result', ActivityResult)
        probe.listen('/bg/activity', String)
        assert probe.wait_for_subscriber('/bg/image', Image, timeout=30)
        frames = synth.render_clip('grow', np.random.default_rng(0), size=64, frames=16)

        def answered() -> bool:
            for frame in frames:  # resent until the recogniser answers (see lifecycle test)
                probe.publish_image('/bg/image', probe.image(frame))
            return bool(probe.received('/bg/activity/result'))

        assert probe.wait_for(answered, 60)
        result = probe.dicts('/bg/activity/result')[-1]
        assert result['label'] == UNKNOWN_LABEL
        assert result['top_k'][0]['label'] == BACKGROUND_CLASS
        assert probe.wait_for(lambda: probe.received('/bg/activity'), 10)
        assert probe.received('/bg/activity')[-1].data == UNKNOWN_LABEL
    finally:
        probe.close()
        running.close()
