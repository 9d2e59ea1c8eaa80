"""Camera buffers to RGB uint8 arrays: the one decoder of training and serving.

A sensor_msgs/Image is raw bytes plus `encoding`, `height`, `width`, `step` (bytes per row,
which may include padding) and `is_bigendian`. `decode_raw` turns exactly those fields into
an `[H, W, 3]` RGB uint8 array and `decode_compressed` does the same for the bytes of a
sensor_msgs/CompressedImage. The robot's node, the rosbag2 reader and the tests all call
these two, so a model trained on the robot's own recordings sees in service the pixels it
was trained on. Video files are decoded by FFmpeg straight to rgb8, which is the identity
here.

One meaning for each kind of input, fixed per encoding, never per frame:
- 8-bit colour, mono and Bayer mosaics: as they are (Bayer demosaiced by OpenCV).
- 16-bit colour, mono and Bayer (`rgb16`, `mono16`, `bayer_rggb16`, ...): the full range,
  value / 257 rounded, so 65535 is 255 (the same as a 16-bit PNG).
- Depth (`16UC1` in millimetres, `32FC1` in metres, REP 118): distance mapped linearly
  from 0 to `depth_max_m` (10 m by default) onto 0..255, nearer darker. A zero, NaN or
  infinite depth (no return) is 0; farther than `depth_max_m` is 255. A fixed scale keeps
  the same distance the same grey in every frame, which a per-frame stretch would not.

Errors are `ImageError`, whose `cause` is a short stable key (`unknown_encoding`,
`wrong_step`, ...) so a node can log each cause once and count them. The common case
(rgb8 without row padding) is a zero-copy view of the message buffer.
"""

from __future__ import annotations

import numpy as np

from vas_ros.errors import VasError

DEPTH_MAX_M = 10.0
# 8K UHD (7680 x 4320). Larger frames are refused before they are decoded: an 8000 x 8000
# frame is 192 MB as RGB, and no camera a robot carries sends one.
MAX_PIXELS = 7680 * 4320


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
    'rgb16': (3, 2, 'rgb'),
    'bgr16': (3, 2, 'bgr'),
    'rgba16': (4, 2, 'rgba'),
    'bgra16': (4, 2, 'bgra'),
    'mono8': (1, 1, 'mono'),
    'mono16': (1, 2, 'mono'),
    '8UC1': (1, 1, 'mono'),
    '8UC3': (3, 1, 'bgr'),  # OpenCV's default channel order, as cv_bridge assumes
    '8UC4': (4, 1, 'bgra'),
    '16UC1': (1, 2, 'depth_mm'),
    '32FC1': (1, 4, 'depth_m'),
    'uyvy': (2, 1, 'uyvy'),
    'yuv422': (2, 1, 'uyvy'),  # ROS's yuv422 is UYVY byte order
    'yuyv': (2, 1, 'yuyv'),
    'yuv422_yuy2': (2, 1, 'yuyv'),
    **{f'bayer_{pattern}{bits}': (1, bits // 8, f'bayer_{pattern}')
       for pattern in ('rggb', 'bggr', 'gbrg', 'grbg') for bits in (8, 16)},
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
               is_bigendian: bool = False, *, depth_max_m: float = DEPTH_MAX_M) -> np.ndarray:
    """The fields of a sensor_msgs/Image -> RGB uint8 [H, W, 3] (see the module docstring
    for what 16-bit and depth input become).

    `data` is anything with the buffer protocol (bytes, array.array, numpy array). A last
    row without its padding (some drivers omit it) is accepted.
    """
    channels, depth, layout = _layout(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageError('zero_size', f'image has zero size ({width}x{height})')
    if height * width > MAX_PIXELS:
        raise ImageError('too_large', f'{encoding} {width}x{height} is larger than the '
                                      f'{MAX_PIXELS:,} pixels (8K UHD) this decoder accepts')
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageError('wrong_step', f'step {step} is smaller than a row of {width} '
                                       f'{encoding} pixels ({row_bytes} bytes)')
    if layout in ('uyvy', 'yuyv') and width % 2:
        raise ImageError('odd_width', f'{encoding} needs an even width, got {width}')
    if layout.startswith('bayer') and (width % 2 or height % 2 or min(width, height) < 2):
        raise ImageError('odd_width', f'{encoding} needs an even width and height, got '
                                      f'{width}x{height}')
    buf = np.frombuffer(data, dtype=np.uint8)
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ImageError('truncated', f'{encoding} {width}x{height} with step {step} needs '
                                      f'{step * height} bytes, got {buf.size}')
    if buf.size < step * height:  # the last row came without its padding
        buf = np.concatenate([buf[:needed], np.zeros(step * height - needed, np.uint8)])
    rows = buf[:step * height].reshape(height, step)[:, :row_bytes]
    if depth == 1:
        return _to_rgb(rows.reshape(height, width, channels), layout)
    order = '>' if is_bigendian else '<'
    kind = f'{order}f4' if depth == 4 else f'{order}u2'
    values = np.ascontiguousarray(rows).view(kind).reshape(height, width, channels)
    if layout in ('depth_mm', 'depth_m'):
        return _from_depth(values[..., 0], 1000.0 if layout == 'depth_mm' else 1.0,
                           depth_max_m)
    return _to_rgb(_to_8bit(values), layout)


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit intensities over their full range: value / 257, rounded (65535 -> 255)."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _from_depth(values: np.ndarray, per_metre: float, depth_max_m: float) -> np.ndarray:
    import cv2

    if not (isinstance(depth_max_m, (int, float)) and np.isfinite(depth_max_m)
            and depth_max_m > 0):
        raise ImageError('bad_depth_range', f'depth_max_m must be a finite number > 0, got '
                                            f'{depth_max_m!r}')
    metres = values.astype(np.float32) / np.float32(per_metre)
    valid = np.isfinite(metres) & (metres > 0)
    scaled = np.where(valid, metres, 0.0) * np.float32(255.0 / depth_max_m)
    gray8 = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray8, cv2.COLOR_GRAY2RGB)


# ROS names a mosaic by its first row (rggb: R G / G B); OpenCV names it by the second
# row's middle pair, so ROS rggb is OpenCV's BayerBG (as cv_bridge maps it).
_BAYER = {'bayer_rggb': 'COLOR_BayerBG2RGB', 'bayer_bggr': 'COLOR_BayerRG2RGB',
          'bayer_gbrg': 'COLOR_BayerGR2RGB', 'bayer_grbg': 'COLOR_BayerGB2RGB'}


def _to_rgb(pixels: np.ndarray, layout: str) -> np.ndarray:
    import cv2

    if layout == 'rgb':
        return pixels
    if layout == 'bgr':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_BGR2RGB)
    if layout == 'rgba':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGBA2RGB)
    if layout == 'bgra':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_BGRA2RGB)
    if layout == 'mono':
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2RGB)
    if layout == 'uyvy':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_YUV2RGB_UYVY)
    if layout == 'yuyv':
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_YUV2RGB_YUY2)
    if layout in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]),
                            getattr(cv2, _BAYER[layout]))
    raise AssertionError(layout)


def image_msg_to_rgb(msg, *, depth_max_m: float = DEPTH_MAX_M) -> np.ndarray:
    """A sensor_msgs Image or CompressedImage (rclpy's, rosbags', or any object with the
    same fields) -> RGB uint8 [H, W, 3]: what the node and the rosbag2 reader both call."""
    data = msg.data
    if not isinstance(data, (bytes, bytearray, memoryview, np.ndarray)):
        data = memoryview(data) if hasattr(data, 'buffer_info') else bytes(data)
    if hasattr(msg, 'format'):  # CompressedImage: JPEG/PNG bytes
        return decode_compressed(data, msg.format)
    return decode_raw(data, msg.encoding, msg.height, msg.width, msg.step,
                      bool(msg.is_bigendian), depth_max_m=depth_max_m)


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
    if image.dtype == np.uint16:  # 16-bit PNG: the same scaling as raw mono16 / rgb16
        image = _to_8bit(image)
    elif image.dtype != np.uint8:
        raise ImageError('unknown_encoding', f'compressed image ({fmt or "unknown format"}) '
                                             f'decodes to {image.dtype}, not 8 or 16 bits')
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_raw(rgb: np.ndarray, encoding: str = 'rgb8', padding: int = 0,
               big_endian: bool = False, *, depth_max_m: float = DEPTH_MAX_M
               ) -> tuple[bytes, int]:
    """RGB uint8 [H, W, 3] -> (data, step) in `encoding`: how sources and tests build frames.

    The inverse of `decode_raw` wherever the encoding can hold the image: 16-bit values
    are the 8-bit ones times 257, depth is grey / 255 * `depth_max_m`, mono and Bayer keep
    the grey (Rec. 601 luma) or the mosaic's sample. `padding` adds that many bytes at the
    end of every row (a padded `step`).
    """
    import cv2

    channels, depth, layout = _layout(encoding)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if layout in ('uyvy', 'yuyv'):
        pixels = _rgb_to_yuv422(rgb, layout)
    elif layout.startswith('bayer'):
        pixels = _rgb_to_bayer(rgb, layout)
    elif layout in ('depth_mm', 'depth_m'):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255 * depth_max_m
        pixels = (np.rint(gray * 1000).astype(np.uint16) if layout == 'depth_mm'
                  else gray.astype(np.float32))
    else:
        code = {'rgb': None, 'bgr': cv2.COLOR_RGB2BGR, 'rgba': cv2.COLOR_RGB2RGBA,
                'bgra': cv2.COLOR_RGB2BGRA, 'mono': cv2.COLOR_RGB2GRAY}[layout]
        pixels = rgb if code is None else cv2.cvtColor(rgb, code)
    if depth == 2 and pixels.dtype == np.uint8:
        pixels = pixels.astype(np.uint16) * 257
    if depth > 1:
        kind = f'{">" if big_endian else "<"}{"f4" if depth == 4 else "u2"}'
        pixels = pixels.astype(kind).view(np.uint8)
    height = rgb.shape[0]
    rows = pixels.reshape(height, -1)
    assert rows.shape[1] == rgb.shape[1] * channels * depth, (encoding, rows.shape)
    if padding:
        rows = np.concatenate([rows, np.zeros((height, padding), np.uint8)], axis=1)
    return rows.tobytes(), rows.shape[1]


def _rgb_to_bayer(rgb: np.ndarray, layout: str) -> np.ndarray:
    """The mosaic a Bayer sensor would record: one colour sample per pixel, by position."""
    height, width = rgb.shape[:2]
    if width % 2 or height % 2:
        raise ImageError('odd_width', f'{layout} needs an even width and height, got '
                                      f'{width}x{height}')
    channel = {'r': 0, 'g': 1, 'b': 2}
    pattern = layout.split('_')[1]  # e.g. rggb: (0,0) R, (0,1) G, (1,0) G, (1,1) B
    mosaic = np.empty((height, width), np.uint8)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[pattern[k]]]
    return mosaic


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
