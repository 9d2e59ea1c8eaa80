"""Camera buffers to RGB uint8 arrays, without ROS.

A sensor_msgs/Image is raw bytes plus `encoding`, `height`, `width`, `step` (bytes per row,
which may include padding) and `is_bigendian`. `decode_raw` turns exactly those fields into
an `[H, W, 3]` RGB uint8 array and `decode_compressed` does the same for the bytes of a
sensor_msgs/CompressedImage. Both raise `ImageError`, whose `cause` is a short stable key
(`unknown_encoding`, `wrong_step`, ...) so a node can log each cause once and count them.

The common case (rgb8 without row padding) is a zero-copy view of the message buffer.
"""

from __future__ import annotations

import numpy as np

from vas_ros.errors import VasError


class ImageError(VasError):
    """A frame that cannot be decoded; `cause` names the kind of problem."""

    def __init__(self, cause: str, message: str):
        self.cause = cause
        super().__init__(message)


# encoding -> (channels, bytes per channel, layout); layout tells how to reach RGB.
_LAYOUTS: dict[str, tuple[int, int, str]] = {
    'rgb8': (3, 1, 'rgb'),
    'bgr8': (3, 1, 'bgr'),
    'rgba8': (4, 1, 'rgba'),
    'bgra8': (4, 1, 'bgra'),
    'mono8': (1, 1, 'mono'),
    '8UC1': (1, 1, 'mono'),
    '8UC3': (3, 1, 'bgr'),  # OpenCV's default channel order, as cv_bridge assumes
    '8UC4': (4, 1, 'bgra'),
    'mono16': (1, 2, 'mono16'),
    '16UC1': (1, 2, 'depth16'),
    'uyvy': (2, 1, 'uyvy'),
    'yuv422': (2, 1, 'uyvy'),  # ROS's yuv422 is UYVY byte order
    'yuyv': (2, 1, 'yuyv'),
    'yuv422_yuy2': (2, 1, 'yuyv'),
}

ENCODINGS = tuple(_LAYOUTS)


def bytes_per_pixel(encoding: str) -> int:
    channels, depth, _ = _layout(encoding)
    return channels * depth


def _layout(encoding: str) -> tuple[int, int, str]:
    key = encoding if encoding in _LAYOUTS else encoding.lower()
    if key not in _LAYOUTS:
        raise ImageError('unknown_encoding',
                         f'unsupported image encoding {encoding!r}; supported: '
                         f'{", ".join(ENCODINGS)}')
    return _LAYOUTS[key]


def decode_raw(data, encoding: str, height: int, width: int, step: int,
               is_bigendian: bool = False) -> np.ndarray:
    """The fields of a sensor_msgs/Image -> RGB uint8 [H, W, 3].

    `data` is anything with the buffer protocol (bytes, array.array, numpy array).
    16-bit images are scaled to 8 bits: `mono16` by its full range (value / 257), `16UC1`
    (usually depth in mm) by the range of its valid (non-zero) pixels, zero staying black.
    """
    channels, depth, layout = _layout(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageError('zero_size', f'image has zero size ({width}x{height})')
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageError('wrong_step', f'step {step} is smaller than a row of {width} '
                                       f'{encoding} pixels ({row_bytes} bytes)')
    if layout in ('uyvy', 'yuyv') and width % 2:
        raise ImageError('odd_width', f'{encoding} needs an even width, got {width}')
    buf = np.frombuffer(data, dtype=np.uint8)
    needed = step * height
    if buf.size < needed:
        raise ImageError('truncated', f'{encoding} {width}x{height} with step {step} needs '
                                      f'{needed} bytes, got {buf.size}')
    rows = buf[:needed].reshape(height, step)[:, :row_bytes]
    if depth == 2:
        pixels = rows.view('>u2' if is_bigendian else '<u2').reshape(height, width)
        return _from_16bit(pixels, layout)
    pixels = rows.reshape(height, width, channels)
    return _to_rgb(pixels, layout)


def _to_rgb(pixels: np.ndarray, layout: str) -> np.ndarray:
    import cv2

    if layout == 'rgb':
        return pixels
    if layout == 'bgr':
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if layout == 'rgba':
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if layout == 'bgra':
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    if layout == 'mono':
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2RGB)
    if layout == 'uyvy':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_YUV2RGB_UYVY)
    if layout == 'yuyv':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_YUV2RGB_YUY2)
    raise AssertionError(layout)


def _from_16bit(pixels: np.ndarray, layout: str) -> np.ndarray:
    import cv2

    values = pixels.astype(np.float32)
    if layout == 'mono16':
        gray = values * (255.0 / 65535.0)
    else:
        valid = values > 0
        if valid.any():
            low, high = float(values[valid].min()), float(values[valid].max())
            gray = (values - low) * (255.0 / max(high - low, 1.0))
            gray[~valid] = 0.0
        else:
            gray = values
    gray8 = np.clip(gray + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray8, cv2.COLOR_GRAY2RGB)


def decode_compressed(data, fmt: str = '') -> np.ndarray:
    """The bytes of a sensor_msgs/CompressedImage (jpeg, png, ...) -> RGB uint8 [H, W, 3]."""
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError('zero_size', f'compressed image ({fmt or "unknown format"}) is empty')
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageError('corrupt_compressed', f'could not decode {buf.size} bytes of '
                                               f'compressed image ({fmt or "unknown format"})')
    if image.dtype == np.uint16:  # 16-bit PNG: same scaling as raw mono16
        if image.ndim == 2:
            return _from_16bit(image, 'mono16')
        image = (image / 257.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_raw(rgb: np.ndarray, encoding: str = 'rgb8', padding: int = 0,
               big_endian: bool = False) -> tuple[bytes, int]:
    """RGB uint8 [H, W, 3] -> (data, step) in `encoding`: how sources and tests build frames.

    `padding` adds that many bytes at the end of every row (a padded `step`).
    """
    import cv2

    layout = _layout(encoding)[2]
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if layout == 'rgb':
        pixels = rgb
    elif layout == 'bgr':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif layout == 'rgba':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif layout == 'bgra':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif layout == 'mono':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif layout in ('mono16', 'depth16'):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        pixels = gray.astype('>u2' if big_endian else '<u2').view(np.uint8)
    elif layout in ('uyvy', 'yuyv'):
        pixels = _rgb_to_yuv422(rgb, layout)
    else:
        raise AssertionError(layout)
    height = rgb.shape[0]
    rows = pixels.reshape(height, -1)
    if padding:
        rows = np.concatenate([rows, np.zeros((height, padding), np.uint8)], axis=1)
    return rows.tobytes(), rows.shape[1]


def _rgb_to_yuv422(rgb: np.ndarray, layout: str) -> np.ndarray:
    """Pack RGB into 4:2:2 (BT.601, as OpenCV decodes it): two pixels share U and V."""
    if rgb.shape[1] % 2:
        raise ImageError('odd_width', f'{layout} needs an even width, got {rgb.shape[1]}')
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b  # BT.601 video range
    u_full = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v_full = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u = (u_full[:, 0::2] + u_full[:, 1::2]) / 2
    v = (v_full[:, 0::2] + v_full[:, 1::2]) / 2
    out = np.empty((rgb.shape[0], rgb.shape[1] * 2), np.float32)
    if layout == 'uyvy':
        out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = y[:, 0::2], u, y[:, 1::2], v
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
