"""Domain randomisation in `data synth`: each factor changes the frames, and none of them
changes what decides the class (the actor's motion)."""

from __future__ import annotations

import numpy as np
import pytest

from vas_ros.data import synth
from vas_ros.data.randomisation import FACTORS, check_factors
from vas_ros.errors import DataError

SIZE, FRAMES = 48, 8
# Factors that move the camera or retime the motion; the rest leave the truth untouched.
CAMERA = {'shake', 'ego_motion'}
TIMING = {'speed', 'mid_motion'}
# Factors that change what of the actor is visible (its outline, or what hides it).
VISIBLE = {'shapes', 'occlusion'}


def _first_changed(factor: str, label: str):
    """(with, without, truth with, truth without) for the first clip the factor touches."""
    rest = set(FACTORS) - {factor}
    for index in range(16):
        a, ta = synth.render_clip_with_truth(label, synth.clip_rng(1, 'f', label, index),
                                             size=SIZE, frames=FRAMES, factors=FACTORS)
        b, tb = synth.render_clip_with_truth(label, synth.clip_rng(1, 'f', label, index),
                                             size=SIZE, frames=FRAMES, factors=rest)
        if not np.array_equal(a, b):
            return a, b, ta, tb
    raise AssertionError(f'{factor} changed none of 16 clips')


@pytest.mark.parametrize('factor', FACTORS)
def test_each_factor_changes_the_frames_and_keeps_the_motion(factor):
    label = 'move_right'
    a, b, ta, tb = _first_changed(factor, label)
    assert a.shape == b.shape == (FRAMES, SIZE, SIZE, 3) and a.dtype == np.uint8
    if factor not in TIMING:
        assert np.array_equal(ta['radius'], tb['radius'])
        assert np.array_equal(ta['angle'], tb['angle'])
    if factor not in TIMING | CAMERA:
        assert np.allclose(ta['centre'], tb['centre'])
    if factor not in VISIBLE | TIMING | CAMERA:
        assert np.allclose(ta['mask'], tb['mask'])
    # whatever the factor, the actor still travels to the right, by more than the camera
    for truth in (ta, tb):
        travel = truth['centre'][-1, 0] - truth['centre'][0, 0]
        assert travel > 0.08 * SIZE, (factor, travel)


def test_factors_leave_each_other_alone():
    """A factor that is on but not drawn for a clip leaves that clip exactly as it is
    without the factor: each factor has its own random stream."""
    same = 0
    for index in range(12):
        a = synth.render_clip('grow', synth.clip_rng(2, 'f', 'grow', index), size=SIZE,
                              frames=FRAMES, factors=FACTORS)
        b = synth.render_clip('grow', synth.clip_rng(2, 'f', 'grow', index), size=SIZE,
                              frames=FRAMES,
                              factors=set(FACTORS) - {'occlusion'})
        same += np.array_equal(a, b)
    assert 0 < same < 12  # occlusion is drawn for a share of the clips only


def test_check_factors_reads_lists_and_refuses_unknown_names():
    assert check_factors('all') == frozenset(FACTORS)
    assert check_factors('none') == frozenset() == check_factors('')
    assert check_factors('blur, noise') == {'blur', 'noise'}
    with pytest.raises(DataError, match='unknown randomisation factor'):
        check_factors('blur,glitter')
    with pytest.raises(DataError, match='factors must be names'):
        check_factors(3)


def test_the_written_marker_records_the_factors(tmp_path):
    import json

    root = synth.write_synthetic_dataset(tmp_path / 'd', per_class=1, seed=0,
                                         splits=('train',), size=32, frames=4,
                                         progress=False, factors='blur,noise')
    info = json.loads((root / synth.MARKER).read_text())
    assert info['factors'] == ['blur', 'noise']
    with pytest.raises(DataError, match='glitter'):
        synth.write_synthetic_dataset(tmp_path / 'e', per_class=1, seed=0, factors='glitter')
    assert not (tmp_path / 'e').exists()  # refused before anything was written
