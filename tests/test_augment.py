"""Training-time augmentation: flips swap exactly the labels they change, every factor
changes the frames alike across a clip, and the data set applies it to both streams."""

from __future__ import annotations

import numpy as np
import pytest

from vas_ros.data import augment, synth
from vas_ros.data.augment import Augmentation, augment_clip, flip_axes, flipped_label
from vas_ros.errors import DataError
from vas_ros.models.spec import BACKGROUND_CLASS


def test_flips_swap_the_classes_they_change_and_no_others():
    assert flipped_label('move_left', ('horizontal',)) == 'move_right'
    assert flipped_label('rotate_cw', ('horizontal',)) == 'rotate_ccw'
    assert flipped_label('move_up', ('horizontal',)) == 'move_up'
    assert flipped_label('move_up', ('vertical',)) == 'move_down'
    assert flipped_label('rotate_ccw', ('vertical',)) == 'rotate_cw'
    # both flips are a half turn: the sense of rotation survives it
    assert flipped_label('rotate_cw', ('horizontal', 'vertical')) == 'rotate_cw'
    for label in ('grow', 'shrink', BACKGROUND_CLASS):
        assert flipped_label(label, ('horizontal', 'vertical')) == label


def test_flips_only_where_the_class_list_says_what_they_do():
    assert flip_axes(synth.dataset_classes(with_none=True)) == ('horizontal', 'vertical')
    # without move_right, a mirrored move_left would have no class to go to
    assert flip_axes(['move_left', 'grow']) == ('vertical',)
    assert flip_axes(['wave_left_hand', 'grow']) == ()  # unknown names are never flipped
    assert flip_axes([]) == ()


def test_a_flipped_move_left_clip_moves_right():
    frames, truth = synth.render_clip_with_truth('move_left', np.random.default_rng(2),
                                                 size=64, frames=8)
    mirrored = augment_clip(frames, ('horizontal',), np.random.default_rng(0), augment.NONE)
    assert np.array_equal(mirrored, frames[:, :, ::-1])
    mass = (truth['mask'][:, :, ::-1] * np.arange(64)[None, None, :]).sum((1, 2)) / \
        truth['mask'].sum((1, 2))
    assert mass[-1] - mass[0] > 5  # the actor's centre now travels to the right


@pytest.mark.parametrize('factor', ['colour', 'noise', 'blur'])
def test_each_photometric_factor_changes_the_frames_and_keeps_their_shape(factor):
    frames = synth.render_clip('grow', np.random.default_rng(1), size=48, frames=6)
    only = Augmentation(flip=False, colour=0.0, noise=0.0, blur=0.0, speed=1.0)
    policy = Augmentation(**{**only.to_dict(), factor: getattr(Augmentation(), factor)})
    changed = None
    for seed in range(10):  # blur is taken with probability 1/3
        out = augment_clip(frames, (), np.random.default_rng(seed), policy)
        assert out.dtype == np.uint8 and out.shape == frames.shape
        if not np.array_equal(out, frames):
            changed = out
            break
    assert changed is not None
    assert np.array_equal(augment_clip(frames, (), np.random.default_rng(0), only), frames)


def test_colour_changes_every_frame_of_a_clip_alike():
    frame = synth.render_clip('grow', np.random.default_rng(1), size=32, frames=2)[0]
    clip = np.stack([frame] * 4)
    policy = Augmentation(flip=False, colour=0.3, noise=0.0, blur=0.0, speed=1.0)
    out = augment_clip(clip, (), np.random.default_rng(3), policy)
    assert not np.array_equal(out[0], frame)
    assert all(np.array_equal(out[0], f) for f in out[1:])


def test_speed_indices_stay_inside_the_video_and_change_the_span():
    rng = np.random.default_rng(0)
    slow = augment.speed_indices(64, 8, 2, 0.5, rng)
    fast = augment.speed_indices(64, 8, 2, 2.0, rng)
    assert slow.min() >= 0 and fast.max() <= 63 and len(slow) == len(fast) == 8
    assert np.ptp(fast) > np.ptp(slow)
    short = augment.speed_indices(16, 8, 2, 3.0, rng)  # too fast to fit: slowed to fit
    assert short.max() <= 15 and np.all(np.diff(short) > 0)
    assert np.array_equal(augment.speed_indices(1, 4, 1, 2.0, rng), [0, 0, 0, 0])


@pytest.mark.parametrize('bad', [{'colour': -0.1}, {'colour': 2.0}, {'noise': 'x'},
                                 {'blur': float('nan')}, {'speed': 0.5}, {'speed': True}])
def test_bad_policies_are_refused(bad):
    with pytest.raises(DataError):
        Augmentation(**bad)


def test_the_training_set_swaps_labels_with_flips_for_both_streams(tmp_path):
    from dataclasses import replace

    from vas_ros.data.datasets import open_dataset
    from vas_ros.models.factory import resolve_arch

    root = synth.write_synthetic_dataset(tmp_path / 'd', per_class=1, seed=0,
                                         splits=('train',), size=32, frames=16,
                                         progress=False)
    arch = resolve_arch('tvn_tiny')
    spec = replace(arch.input_spec(), size=32, streams=('rgb', 'flow'))
    data = open_dataset(root, 'train', spec, train=True, augment=Augmentation())
    index = data.classes.index('move_left')
    seen = set()
    for epoch in range(12):
        data.set_epoch(epoch)
        inputs, label = data[index]
        assert set(inputs) == {'rgb', 'flow'}
        assert inputs['rgb'].shape[-2:] == inputs['flow'].shape[-2:] == (32, 32)
        seen.add(data.classes[label])
    assert seen == {'move_left', 'move_right'}
    plain = open_dataset(root, 'train', spec, train=True)
    assert {plain.classes[plain[index][1]] for _ in range(6)} == {'move_left'}
