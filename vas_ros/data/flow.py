"""Dense optical flow with OpenCV, shared by training and the robot runtime.

Methods (InputSpec.flow_method): 'dis' = DIS ultrafast preset (default, fastest),
'dis_fast', 'dis_medium' (more accurate, slower) and 'farneback'. Flow is computed on grey
frames for each consecutive pair: flow[t] = displacement from frame t to t+1 in pixels
(channel 0 = x, to the right; channel 1 = y, downwards); the last pair's flow is repeated
so the result has as many time steps as the clip. A one-frame clip gets zero flow.

Model inputs use `normalise_flow`: pixels at the model's input size divided by
`spec.flow_scale` (default 20) and clipped to [-1, 1].
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from vas_ros.errors import DataError

FLOW_METHODS = ('dis', 'dis_fast', 'dis_medium', 'farneback')
_DIS_PRESETS = {'dis': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                'dis_fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
                'dis_medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
_DIS_MIN_SIDE = 16  # smaller frames are edge-padded to this for DIS, the flow cropped back
_local = threading.local()  # OpenCV flow objects are not thread-safe: one set per thread


def _dis(method: str):
    cache = getattr(_local, 'dis', None)
    if cache is None:
        cache = _local.dis = {}
    if method not in cache:
        cache[method] = cv2.DISOpticalFlow_create(_DIS_PRESETS[method])
    return cache[method]


def flow_pair(prev_grey: np.ndarray, next_grey: np.ndarray, method: str = 'dis') -> np.ndarray:
    """Flow [H, W, 2] float32 in pixels from one uint8 grey frame to the next."""
    if method in _DIS_PRESETS:
        height, width = prev_grey.shape
        if min(height, width) < _DIS_MIN_SIDE:  # DIS rejects (or crashes on) tiny frames
            pad = ((0, max(0, _DIS_MIN_SIDE - height)), (0, max(0, _DIS_MIN_SIDE - width)))
            flow = _dis(method).calc(np.pad(prev_grey, pad, mode='edge'),
                                     np.pad(next_grey, pad, mode='edge'), None)
            return np.ascontiguousarray(flow[:height, :width])
        return _dis(method).calc(prev_grey, next_grey, None)
    if method == 'farneback':
        return cv2.calcOpticalFlowFarneback(prev_grey, next_grey, None, pyr_scale=0.5,
                                            levels=3, winsize=15, iterations=3, poly_n=5,
                                            poly_sigma=1.2, flags=0)
    raise DataError(f'unknown flow method {method!r}; choose one of {FLOW_METHODS}')


def to_grey(frames_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [T, H, W, 3] -> uint8 grey [T, H, W]."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames_rgb])


def _checked_frames(frames_uint8_rgb, method: str) -> np.ndarray:
    frames = np.asarray(frames_uint8_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DataError(f'optical flow needs uint8 RGB frames [T, H, W, 3], got '
                        f'{frames.dtype} {list(frames.shape)}')
    if method not in FLOW_METHODS:
        raise DataError(f'unknown flow method {method!r}; choose one of {FLOW_METHODS}')
    return frames


def compute_flow(frames_uint8_rgb: np.ndarray, method: str = 'dis') -> np.ndarray:
    """Flow for each consecutive pair of a clip, float32 [T, H, W, 2] in pixels (x, y).

    flow[t] is the motion from frame t to t+1; flow[T-1] repeats flow[T-2].
    """
    frames = _checked_frames(frames_uint8_rgb, method)
    count, height, width = frames.shape[:3]
    flow = np.zeros((count, height, width, 2), np.float32)
    if count < 2:
        return flow
    grey = to_grey(frames)
    for t in range(count - 1):
        flow[t] = flow_pair(grey[t], grey[t + 1], method)
    flow[-1] = flow[-2]
    return flow


def normalise_flow(flow: np.ndarray, flow_scale: float) -> np.ndarray:
    """Model-ready flow: pixels / flow_scale, clipped to [-1, 1] (float32)."""
    return np.clip(np.asarray(flow, np.float32) / float(flow_scale), -1.0, 1.0)


def flow_input_tensor(frames_uint8_rgb: np.ndarray, method: str, flow_scale: float):
    """The model's flow stream: float32 tensor [2, T, H, W] equal to
    `normalise_flow(compute_flow(frames, method), flow_scale)` moved channels-first, but
    written straight into one torch buffer (no large temporary arrays)."""
    import torch

    frames = _checked_frames(frames_uint8_rgb, method)
    count, height, width = frames.shape[:3]
    # numpy fills the buffer: torch's own (OpenMP) fill/clamp took ~45 ms on a busy 2-core box
    out = torch.empty((2, count, height, width), dtype=torch.float32)
    planes = out.numpy()
    if count < 2:
        planes.fill(0.0)
        return out
    grey = to_grey(frames)
    scale = np.float32(1.0 / float(flow_scale))
    for t in range(count - 1):
        flow = flow_pair(grey[t], grey[t + 1], method)
        for axis in (0, 1):
            np.multiply(flow[..., axis], scale, out=planes[axis, t])
    np.clip(planes, -1.0, 1.0, out=planes)
    planes[:, -1] = planes[:, -2]
    return out


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour picture of one flow field [H, W, 2]: hue = direction, brightness = speed."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    top = max_magnitude or max(float(np.percentile(magnitude, 99)), 1e-6)
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / top * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
