"""Synthetic motion data: real MP4 layout, determinism, motion visible in flow, frames blind."""

from __future__ import annotations

import numpy as np
import pytest

from vas_ros.data.flow import compute_flow
from vas_ros.data.synth import (
    CLASSES,
    clip_rng,
    render_clip,
    render_clip_with_truth,
    write_synthetic_dataset,
)
from vas_ros.data.video_io import read_video, write_video
from vas_ros.errors import DataError


def test_classes_are_the_contract_names_sorted():
    assert CLASSES == tuple(sorted(['move_left', 'move_right', 'move_up', 'move_down',
                                    'rotate_cw', 'rotate_ccw', 'grow', 'shrink']))


def _decoded(root):
    return {p.relative_to(root).as_posix(): read_video(p)[0]
            for p in sorted(root.rglob('*.mp4'))}


def test_write_synthetic_dataset_layout_and_determinism(tmp_path):
    kwargs = dict(per_class=1, splits=('train', 'val'), size=32, frames=8, fps=10,
                  progress=False)
    first = write_synthetic_dataset(tmp_path / 'a', seed=7, **kwargs)
    again = write_synthetic_dataset(tmp_path / 'b', seed=7, **kwargs)
    other = write_synthetic_dataset(tmp_path / 'c', seed=8, **kwargs)
    videos = _decoded(first)
    expected = {f'{s}/{c}/{c}_0000.mp4' for s in ('train', 'val') for c in CLASSES}
    assert set(videos) == expected
    for name, frames in videos.items():
        assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
        assert read_video(first / name)[1] == pytest.approx(10.0)
    same = _decoded(again)
    assert all(np.array_equal(videos[k], same[k]) for k in videos)
    different = _decoded(other)
    assert not any(np.array_equal(videos[k], different[k]) for k in videos)
    # train and val clips differ (no leakage of the very same clip)
    assert not np.array_equal(videos['train/grow/grow_0000.mp4'], videos['val/grow/grow_0000.mp4'])
    assert (first / 'synth.json').is_file()


def test_render_clip_checks_its_arguments():
    with pytest.raises(DataError, match='unknown synthetic class'):
        render_clip('jump', np.random.default_rng(0))
    with pytest.raises(DataError, match='size >= 16'):
        render_clip('grow', np.random.default_rng(0), size=8)


def _motion_statistics(frames, truth):
    """Mean x/y flow, rotation (curl) and expansion (divergence) over the object."""
    flow = compute_flow(frames)[:-1]
    size = frames.shape[1]
    inside = truth['mask'][:-1] > 0.5
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    rx = xx[None] - truth['centre'][:-1, 0, None, None]
    ry = yy[None] - truth['centre'][:-1, 1, None, None]
    fx, fy = flow[..., 0], flow[..., 1]
    return {'x': fx[inside].mean(), 'y': fy[inside].mean(),
            'curl': (rx * fy - ry * fx)[inside].mean(),
            'div': (rx * fx + ry * fy)[inside].mean()}


# statistic and the sign it must have; image y grows downwards, so a counter-clockwise turn
# on screen has a negative curl.
EXPECTED_MOTION = {'move_right': ('x', 1), 'move_left': ('x', -1), 'move_down': ('y', 1),
                   'move_up': ('y', -1), 'rotate_ccw': ('curl', -1), 'rotate_cw': ('curl', 1),
                   'grow': ('div', 1), 'shrink': ('div', -1)}


@pytest.mark.parametrize('label', CLASSES)
def test_each_class_motion_is_recoverable_from_flow_after_mp4(tmp_path, label):
    stat, sign = EXPECTED_MOTION[label]
    values = []
    for index in range(5):
        frames, truth = render_clip_with_truth(label, clip_rng(11, 'test', label, index),
                                               size=64, frames=8)
        decoded, _ = read_video(write_video(tmp_path / f'{index}.mp4', frames, 15))
        values.append(_motion_statistics(decoded, truth)[stat] * sign)
    assert sum(v > 0 for v in values) >= 4, (label, values)
    assert np.mean(values) > 0, (label, values)


def test_single_frame_statistics_do_not_reveal_the_class():
    """Object position, size and area pooled over frames look the same for every class."""
    per_class = {}
    for label in CLASSES:
        rows = []
        for index in range(150):
            _, truth = render_clip_with_truth(label, clip_rng(3, 'stats', label, index),
                                              size=32, frames=8)
            rows.append(np.column_stack([truth['centre'], np.log(truth['radius']),
                                         truth['mask'].sum(axis=(1, 2))]))
        per_class[label] = np.concatenate(rows)
    pooled = np.concatenate(list(per_class.values()))
    spread = pooled.std(axis=0)
    for label, rows in per_class.items():
        gap = np.abs(rows.mean(axis=0) - pooled.mean(axis=0)) / spread
        assert (gap < 0.3).all(), (label, dict(zip(['x', 'y', 'log_r', 'area'], gap)))
        ratio = rows.std(axis=0)[:3] / spread[:3]  # area's spread is mostly shape: noisy
        assert (np.abs(ratio - 1) < 0.15).all(), (label, dict(zip(['x', 'y', 'log_r'], ratio)))
        # and the ranges overlap: no class owns the extremes of size or position
        assert rows[:, 2].min() < np.quantile(pooled[:, 2], 0.05)
        assert rows[:, 2].max() > np.quantile(pooled[:, 2], 0.95)
