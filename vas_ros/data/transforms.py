"""THE clip preprocessing: uint8 RGB frames in, model input tensors out.

Training, evaluation and the robot runtime all call `clip_to_inputs`, so a model sees at
run time exactly what it saw in evaluation.

Geometry: the whole frame is resized to spec.size x spec.size without cropping (a
non-square camera image is squeezed, not cut), so nothing at the image edges is lost; the
same squeeze happens in training and at run time. Training (train=True) may instead take a
random crop covering 80-100 % of the frame (aspect 0.9-1.1, same box for every frame of
the clip) and jitter brightness/contrast by up to 10 %. Flips, stronger colour changes,
noise, blur and speed changes happen before this, on the frames, in `augment.py` (a flip
changes some labels, which only the data set knows).
"""

from __future__ import annotations

import cv2
import numpy as np

from vas_ros.data.flow import flow_input_tensor
from vas_ros.errors import DataError

CROP_AREA = (0.8, 1.0)
CROP_ASPECT = (0.9, 1.1)
JITTER = 0.1


def check_frames(frames) -> np.ndarray:
    """The frames as a uint8 [T, H, W, 3] array, or DataError saying what is wrong."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise DataError(f'a clip must be uint8 RGB frames [T>0, H, W, 3], got {frames.dtype} '
                        f'{list(frames.shape)}')
    return frames


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize every frame to size x size (area filter when shrinking, bilinear otherwise)."""
    frames = check_frames(frames)
    height, width = frames.shape[1:3]
    if height == size and width == size:
        return frames
    return np.stack([resize_frame(f, size) for f in frames])


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """One frame [H, W, 3] to size x size, exactly as `resize_frames` does it; decoders call
    it per frame so that a long full-resolution video is never held whole."""
    height, width = frame.shape[:2]
    if height == size and width == size:
        return frame
    interp = cv2.INTER_AREA if size < min(height, width) else cv2.INTER_LINEAR
    return cv2.resize(frame, (size, size), interpolation=interp)


def random_crop_box(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w) covering CROP_AREA of the frame with aspect in CROP_ASPECT."""
    area = rng.uniform(*CROP_AREA) * height * width
    aspect = rng.uniform(*CROP_ASPECT)
    crop_w = int(round(min(width, np.sqrt(area * aspect))))
    crop_h = int(round(min(height, np.sqrt(area / aspect))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return top, left, crop_h, crop_w


def _normalise_rgb(frames: np.ndarray, spec, train: bool, rng):
    """float32 tensor [3, T, H, W] = (x/255 - mean) / std, through a 256-entry table per channel
    (one pass over the clip; training folds the brightness/contrast jitter into the table)."""
    import torch

    values = np.arange(256, dtype=np.float32) / 255.0
    if train:
        contrast = rng.uniform(1 - JITTER, 1 + JITTER)
        brightness = rng.uniform(-JITTER, JITTER) / 2
        level = float(frames.mean()) / 255.0
        values = np.clip((values - level) * contrast + level + brightness, 0.0, 1.0)
    mean = np.asarray(spec.mean, np.float32)[:, None]
    std = np.asarray(spec.std, np.float32)[:, None]
    table = ((values[None, :] - mean) / std).astype(np.float32)
    # torch's allocator: fresh multi-MB numpy buffers page-faulted ~20x slower on the
    # sandboxed machine this was measured on (see docs/data.md, Throughput)
    out = torch.empty((3,) + frames.shape[:3], dtype=torch.float32)
    planes = out.numpy()
    for channel in range(3):
        np.take(table[channel], frames[..., channel], out=planes[channel])
    return out


def clip_to_inputs(frames_uint8_rgb, spec, *, train: bool = False,
                   rng: np.random.Generator | None = None) -> dict:
    """Model inputs {stream: float32 tensor [C, T, H, W]} for one clip (no batch axis).

    `frames_uint8_rgb` is [T, H, W, 3] RGB, any H and W, T = spec.frames (the caller picks
    the frames; see sampling.clip_indices). rgb = (x/255 - mean)/std. flow (when spec
    asks for it) is computed by spec.flow_method on the resized frames, in pixels at
    spec.size, divided by spec.flow_scale and clipped to [-1, 1].
    """

    frames = check_frames(frames_uint8_rgb)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        top, left, crop_h, crop_w = random_crop_box(*frames.shape[1:3], rng)
        frames = frames[:, top:top + crop_h, left:left + crop_w]
    frames = resize_frames(np.ascontiguousarray(frames), spec.size)
    inputs = {}
    if 'rgb' in spec.streams:
        inputs['rgb'] = _normalise_rgb(frames, spec, train, rng)
    if 'flow' in spec.streams:
        inputs['flow'] = flow_input_tensor(frames, spec.flow_method, spec.flow_scale)
    return inputs
