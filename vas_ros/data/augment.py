"""Training-time augmentation of whole clips, the same for every family.

It works on the uint8 RGB frames a data set decodes, before `transforms.clip_to_inputs`
makes tensors of them, so a flow stream is computed from the augmented frames and the
two streams always agree. Every random choice is drawn once per clip and applied to all
of its frames alike (a flip, a colour change or a blur that flickered from frame to frame
would be motion the class does not have).

Flips change some classes: mirrored left to right, move_left becomes move_right and a
clockwise turn becomes counter-clockwise; upside down, move_up and move_down swap, and so
do the turns. Only classes whose behaviour under a flip is known get flipped: the
synthetic classes and `none` (`flip_axes`). A data set with other class names (a user's
own "wave_left_hand") is never flipped, since a mirror could turn one of its classes into
another without anyone knowing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vas_ros.errors import DataError
from vas_ros.models.spec import BACKGROUND_CLASS

# What each flip turns a class into; a class absent from a table is unchanged by that flip.
_TURNS = {'rotate_cw': 'rotate_ccw', 'rotate_ccw': 'rotate_cw'}
FLIP_SWAPS = {
    'horizontal': {'move_left': 'move_right', 'move_right': 'move_left', **_TURNS},
    'vertical': {'move_up': 'move_down', 'move_down': 'move_up', **_TURNS},
}
# Classes whose every flip is in FLIP_SWAPS (or leaves them as they are).
FLIP_KNOWN = frozenset({'grow', 'shrink', 'move_left', 'move_right', 'move_up', 'move_down',
                        'rotate_cw', 'rotate_ccw', BACKGROUND_CLASS})


@dataclass(frozen=True)
class Augmentation:
    """How strongly each factor varies; 0 (or False) switches one off.

    flip: each allowed flip is taken with probability 1/2.
    colour: per-channel gain, brightness and contrast vary by up to this fraction, and the
        saturation by up to twice it.
    noise: sensor noise of standard deviation drawn from [0, noise] grey levels.
    blur: with probability 1/3, a Gaussian blur of sigma drawn from [0.3, blur] pixels.
    speed: playback rate drawn log-uniformly from [1/speed, speed] (frames resampled).
    """

    flip: bool = True
    colour: float = 0.25
    noise: float = 8.0
    blur: float = 1.2
    speed: float = 1.4

    def __post_init__(self):
        for name in ('colour', 'noise', 'blur'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0.0 <= value <= 100.0:
                raise DataError(f'augmentation {name} must be a number in [0, 100], got '
                                f'{value!r}')
        if self.colour > 1.0:
            raise DataError(f'augmentation colour must be in [0, 1], got {self.colour}')
        if isinstance(self.speed, bool) or not isinstance(self.speed, (int, float)) or \
                not 1.0 <= self.speed <= 4.0:
            raise DataError(f'augmentation speed must be in [1, 4] (1 = off), got '
                            f'{self.speed!r}')

    def to_dict(self) -> dict:
        return {'flip': self.flip, 'colour': self.colour, 'noise': self.noise,
                'blur': self.blur, 'speed': self.speed}


NONE = Augmentation(flip=False, colour=0.0, noise=0.0, blur=0.0, speed=1.0)


def flip_axes(classes) -> tuple[str, ...]:
    """The flips that map this class list onto itself with known label changes."""
    classes = set(classes)
    if not classes or not classes <= FLIP_KNOWN:
        return ()
    return tuple(axis for axis, swaps in FLIP_SWAPS.items()
                 if all(swaps.get(name, name) in classes for name in classes))


def flipped_label(label: str, axes) -> str:
    """`label` after the flips in `axes` (each one swaps what its table says)."""
    for axis in axes:
        label = FLIP_SWAPS[axis].get(label, label)
    return label


def speed_indices(num_frames: int, frames: int, frame_stride: int, rate: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Frame indices of one clip played at `rate` times its speed, at a random start.

    The clip spans (frames - 1) * frame_stride * rate source frames; a rate that would not
    fit in the video is lowered until it does, so the clip never repeats its last frame
    more than `clip_indices` would.
    """
    longest = (num_frames - 1) / max(1, (frames - 1) * frame_stride)
    rate = min(rate, max(longest, 1.0)) if num_frames > 1 else 1.0
    step = frame_stride * rate
    span = (frames - 1) * step
    start = rng.uniform(0.0, max(0.0, num_frames - 1 - span))
    return np.minimum(np.round(start + np.arange(frames) * step).astype(int), num_frames - 1)


def _colour_table(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A [3, 256] uint8 lookup table: gain per channel, brightness and contrast."""
    values = np.arange(256, dtype=np.float32)[None, :]
    gain = rng.uniform(1 - strength, 1 + strength, (3, 1))
    contrast = rng.uniform(1 - strength, 1 + strength)
    brightness = rng.uniform(-strength, strength) * 64
    table = (values - 128.0) * contrast + 128.0 + brightness
    return np.clip(table * gain, 0, 255).astype(np.uint8)


def augment_clip(frames: np.ndarray, axes, rng: np.random.Generator,
                 policy: Augmentation) -> np.ndarray:
    """The uint8 [T, H, W, 3] clip flipped along `axes` with photometric changes drawn
    from `rng` (one draw per clip). The caller picks the axes and swaps the label."""
    out = np.asarray(frames)
    if 'horizontal' in axes:
        out = out[:, :, ::-1]
    if 'vertical' in axes:
        out = out[:, ::-1]
    out = np.ascontiguousarray(out)
    if policy.colour > 0:
        table = _colour_table(rng, policy.colour)
        out = np.stack([table[c][out[..., c]] for c in range(3)], axis=-1)
        saturation = rng.uniform(1 - 2 * policy.colour, 1 + 2 * policy.colour)
        if abs(saturation - 1.0) > 1e-3:
            grey = out.mean(axis=-1, keepdims=True, dtype=np.float32)
            out = np.clip(grey + (out - grey) * max(saturation, 0.0), 0, 255).astype(np.uint8)
    if policy.blur > 0 and rng.random() < 1 / 3:
        sigma = rng.uniform(min(0.3, policy.blur), policy.blur)
        out = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in out])
    if policy.noise > 0:
        sigma = rng.uniform(0.0, policy.noise)
        noisy = out + rng.normal(0.0, sigma, out.shape).astype(np.float32)
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def draw_flips(rng: np.random.Generator, allowed) -> tuple[str, ...]:
    """Each allowed flip with probability 1/2."""
    return tuple(axis for axis in allowed if rng.random() < 0.5)
