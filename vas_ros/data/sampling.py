"""Which source frames make up a clip: spec.frames frames, spec.frame_stride apart."""

from __future__ import annotations

import numpy as np


def clip_indices(num_frames: int, frames: int, frame_stride: int = 1, *, train: bool = False,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices of one clip from a video of `num_frames` frames.

    The clip spans (frames - 1) * frame_stride + 1 source frames. Training picks the start
    at random (uniform over every start that fits); evaluation takes the centred window,
    so it is deterministic. A video shorter than the span keeps its first frames and
    repeats the last one.
    """
    if num_frames < 1:
        raise ValueError('a clip needs at least one source frame')
    span = (frames - 1) * frame_stride + 1
    room = max(num_frames - span, 0)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        start = int(rng.integers(0, room + 1))
    else:
        start = room // 2
    return np.minimum(start + np.arange(frames) * frame_stride, num_frames - 1)
