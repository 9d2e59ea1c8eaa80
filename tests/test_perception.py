"""Image decoding and the frame buffer, without ROS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vas_ros.data.image_codec import (
    ENCODINGS,
    ImageError,
    decode_compressed,
    decode_raw,
    encode_raw,
)
from vas_ros.errors import VasError
from vas_ros.perception.frame_buffer import FrameBuffer


def _picture(h=24, w=32) -> np.ndarray:
    """Smooth colour gradients: chroma subsampling and 8-bit grey lose little."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)],
                    axis=-1).astype(np.uint8)


def _grey(rgb):
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


@pytest.mark.parametrize('encoding', ENCODINGS)
@pytest.mark.parametrize('padding', [0, 7])
def test_every_encoding_round_trips_with_and_without_row_padding(encoding, padding):
    rgb = _picture()
    data, step = encode_raw(rgb, encoding, padding=padding)
    out = decode_raw(data, encoding, rgb.shape[0], rgb.shape[1], step)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if encoding in ('mono8', '8UC1', 'mono16', '16UC1', '32FC1'):
        expected, tol = _grey(rgb), 1  # depth: grey / 255 * 10 m and back
    elif encoding in ('uyvy', 'yuv422', 'yuyv', 'yuv422_yuy2'):
        expected, tol = rgb, 12  # 4:2:2 shares chroma between pixel pairs
    elif encoding.startswith('bayer'):  # one sample per pixel, the rest interpolated
        diff = np.abs(out.astype(int) - rgb.astype(int))[2:-2, 2:-2]
        assert diff.mean() < 3 and diff.max() <= 16, (encoding, diff.mean(), diff.max())
        return
    else:
        expected, tol = rgb, 0
    diff = np.abs(out.astype(int) - expected.astype(int))
    assert diff.max() <= tol, (encoding, diff.max())


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('bits', [8, 16])
def test_bayer_mosaics_of_a_red_scene_decode_red(pattern, bits):
    # Built by hand, not by encode_raw: rggb has R at (0, 0), bggr at (1, 1), and so on.
    where = {'rggb': (0, 0), 'bggr': (1, 1), 'gbrg': (1, 0), 'grbg': (0, 1)}[pattern]
    mosaic = np.zeros((8, 8), np.uint16 if bits == 16 else np.uint8)
    mosaic[where[0]::2, where[1]::2] = 200 * (257 if bits == 16 else 1)
    out = decode_raw(mosaic.tobytes(), f'bayer_{pattern}{bits}', 8, 8, 8 * bits // 8)
    assert out[2:-2, 2:-2].reshape(-1, 3).tolist() == [[200, 0, 0]] * 16


def test_channel_order_is_rgb_for_bgr_sources():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # pure red
    for encoding in ('bgr8', 'bgra8', 'rgba8', 'rgb8'):
        data, step = encode_raw(rgb, encoding)
        out = decode_raw(data, encoding, 4, 6, step)
        assert out[0, 0].tolist() == [200, 0, 0], encoding


def test_big_endian_mono16():
    values = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype='>u2')
    out = decode_raw(values.tobytes(), 'mono16', 2, 2, 4, is_bigendian=True)
    assert out[..., 0].tolist() == [[0, 255], [100, 200]]


def test_depth_has_one_fixed_scale_and_no_return_is_black():
    # 16UC1 in mm and 32FC1 in m: 0..10 m onto 0..255, the same in every frame.
    depth = np.array([[0, 1000], [1500, 20000]], dtype='<u2')
    out = decode_raw(depth.tobytes(), '16UC1', 2, 2, 4)
    assert out[..., 0].tolist() == [[0, 26], [38, 255]]
    metres = np.array([[np.nan, 1.0], [1.5, np.inf]], dtype='<f4')
    out = decode_raw(metres.tobytes(), '32FC1', 2, 2, 8)
    assert out[..., 0].tolist() == [[0, 26], [38, 0]]
    near = decode_raw(depth.tobytes(), '16UC1', 2, 2, 4, depth_max_m=2.0)
    assert near[..., 0].tolist() == [[0, 128], [191, 255]]
    with pytest.raises(ImageError, match='depth_max_m'):
        decode_raw(depth.tobytes(), '16UC1', 2, 2, 4, depth_max_m=0)


def test_sixteen_bit_colour_uses_the_full_range():
    values = np.array([[[65535, 0, 257 * 7]]], dtype='>u2')
    out = decode_raw(values.tobytes(), 'bgr16', 1, 1, 6, is_bigendian=True)
    assert out[0, 0].tolist() == [7, 0, 255]


def test_rgb8_without_padding_is_a_view_of_the_message_buffer():
    rgb = _picture()
    data = bytearray(rgb.tobytes())
    out = decode_raw(data, 'rgb8', 24, 32, 96)
    assert np.shares_memory(out, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize('kwargs, cause', [
    (dict(encoding='rgb8', height=0, width=4, step=12), 'zero_size'),
    (dict(encoding='rgb8', height=4, width=0, step=0), 'zero_size'),
    (dict(encoding='rgb8', height=4, width=4, step=10), 'wrong_step'),
    (dict(encoding='rgb8', height=8, width=4, step=12), 'truncated'),
    (dict(encoding='32FC1', height=4, width=4, step=15), 'wrong_step'),
    (dict(encoding='mono8', height=8000, width=8000, step=8000), 'too_large'),
    (dict(encoding='bayer_rggb9', height=4, width=4, step=4), 'unknown_encoding'),
    (dict(encoding='bayer_rggb8', height=3, width=4, step=4), 'odd_width'),
    (dict(encoding='yuv422', height=4, width=3, step=6), 'odd_width'),
    (dict(encoding='mono16', height=4, width=4, step=6), 'wrong_step'),
])
def test_bad_frames_raise_a_specific_error(kwargs, cause):
    data = bytes(4 * 12)
    with pytest.raises(ImageError) as info:
        decode_raw(data, **kwargs)
    assert info.value.cause == cause
    assert isinstance(info.value, VasError)
    assert kwargs['encoding'] in str(info.value) or cause in ('zero_size', 'wrong_step')


@pytest.mark.parametrize('ext', ['.jpg', '.png'])
def test_compressed_images_decode_to_rgb(ext):
    rgb = _picture()
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    out = decode_compressed(buf.tobytes(), ext[1:])
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 3


def test_sixteen_bit_png_and_grey_jpeg():
    grey16 = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000)
    _, png = cv2.imencode('.png', grey16)
    assert decode_compressed(png.tobytes())[3, 3, 0] == round(60000 / 257)
    _, jpg = cv2.imencode('.jpg', np.full((8, 8), 100, np.uint8))
    assert abs(int(decode_compressed(jpg.tobytes())[0, 0, 1]) - 100) <= 2


@pytest.mark.parametrize('data, cause', [(b'', 'zero_size'),
                                         (b'\xff\xd8\xff\xe0garbage' * 10, 'corrupt_compressed')])
def test_corrupt_compressed_data_raises(data, cause):
    with pytest.raises(ImageError) as info:
        decode_compressed(data, 'jpeg')
    assert info.value.cause == cause


# ---------------------------------------------------------------- frame buffer
def _frame(value, size=4):
    return np.full((size, size, 3), value, np.uint8)


def test_clip_per_hop_with_frame_stride():
    buf = FrameBuffer(frames=3, frame_stride=2, hop=2)
    clips = []
    for i in range(12):
        clip = buf.push(_frame(i), stamp=i / 30, meta=i)
        if clip is not None:
            clips.append(clip)
    # The window (5 source frames) is full at frame 4; then one clip every 2 frames.
    assert [c.meta for c in clips] == [4, 6, 8, 10]
    assert [int(f[0, 0, 0]) for f in clips[1].frames] == [2, 4, 6]
    assert clips[-1].frames.shape == (3, 4, 4, 3)
    assert [c.index for c in clips] == [0, 1, 2, 3]
    assert len(buf) == 5  # only what the next clip can use


def test_stride_in_seconds_picks_nearest_frames_at_any_rate():
    buf = FrameBuffer(frames=3, stride_seconds=0.1, hop=1)
    clip = None
    for i in range(40):  # 100 fps input
        clip = buf.push(_frame(i % 256), stamp=i * 0.01) or clip
    assert clip is not None
    assert [round(s, 2) for s in clip.stamps] == [0.19, 0.29, 0.39]
    assert len(buf) <= 22  # bounded: about 0.2 s of frames


def test_memory_stays_bounded_and_time_reset_starts_over():
    buf = FrameBuffer(frames=2, frame_stride=1, hop=1)
    for i in range(1000):
        buf.push(_frame(i % 256), stamp=float(i))
    assert len(buf) == 2
    assert buf.push(_frame(0), stamp=0.5) is None  # time went backwards: a new window
    assert buf.resets == 1 and len(buf) == 1
    assert buf.push(_frame(0, size=8), stamp=1.0) is None  # new size: a new window
    assert buf.resets == 2


def test_hop_change_takes_effect_and_bad_values_are_refused():
    buf = FrameBuffer(frames=1, hop=1)
    assert buf.push(_frame(0), 0.0) is not None
    buf.hop = 3
    got = [buf.push(_frame(0), float(i)) is not None for i in range(1, 7)]
    assert got == [False, False, True, False, False, True]
    with pytest.raises(VasError):
        buf.hop = 0
    with pytest.raises(VasError):
        FrameBuffer(frames=0)
    with pytest.raises(VasError):
        FrameBuffer(frames=2, stride_seconds=-1.0)
