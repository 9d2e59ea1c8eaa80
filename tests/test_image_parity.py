"""Train/serve parity of image decoding: the same bytes give the same pixels whether the
robot's node receives them (an rclpy sensor_msgs/Image) or training reads them from a
rosbag2 recording (rosbags' message, through `read_bag_frames`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from vas_ros.data.image_codec import ENCODINGS, encode_raw, image_msg_to_rgb
from vas_ros.data.rosbag_source import read_bag_frames

HEIGHT, WIDTH, PAD = 6, 8, 3
T0 = 1_700_000_000 * 10**9


def _picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _cases() -> list[tuple[str, str, bool, bytes, int]]:
    """(topic, encoding, big endian, data, step) for every encoding the codec knows, padded
    rows; 16-bit and float encodings once in each byte order."""
    cases = []
    for k, encoding in enumerate(ENCODINGS):
        wide = encoding.endswith('16') or encoding in ('16UC1', '32FC1')
        for big in ((False, True) if wide else (False,)):
            data, step = encode_raw(_picture(k), encoding, padding=PAD, big_endian=big)
            cases.append((f'/cam_{k}_{int(big)}', encoding, big, data, step))
    # The example: depth in mm that a per-frame stretch and a top-byte cut disagreed on
    depth = np.array([[0, 1000, 1500, 2000]] * 2, dtype='<u2')
    cases.append(('/depth_example', '16UC1', False, depth.tobytes(), 8))
    return cases


def _rclpy_image(encoding, big, data, step, height=HEIGHT, width=WIDTH) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big),
                step=step)
    msg.data = data
    return msg


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    path = tmp_path_factory.mktemp('parity') / 'bag'
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=T0 // 10**9, nanosec=0),
        frame_id='camera')
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        for topic, encoding, big, data, step in _cases():
            height = 2 if topic == '/depth_example' else HEIGHT
            width = 4 if topic == '/depth_example' else WIDTH
            conn = writer.add_connection(topic, 'sensor_msgs/msg/Image', typestore=store)
            msg = types['sensor_msgs/msg/Image'](
                header=header, height=height, width=width, encoding=encoding,
                is_bigendian=int(big), step=step, data=np.frombuffer(data, np.uint8))
            writer.write(conn, T0, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
        for fmt, image in (('png', (_picture(99).astype(np.uint16) * 257)),
                           ('png', _picture(98)), ('jpeg', _picture(97))):
            ok, buf = cv2.imencode(f'.{fmt}', image)
            assert ok
            conn = writer.add_connection(f'/compressed_{fmt}_{image.dtype}',
                                         'sensor_msgs/msg/CompressedImage', typestore=store)
            msg = types['sensor_msgs/msg/CompressedImage'](header=header, format=fmt,
                                                           data=buf.reshape(-1))
            writer.write(conn, T0, store.serialize_cdr(msg, 'sensor_msgs/msg/CompressedImage'))
    return path


@pytest.mark.parametrize('case', _cases(), ids=lambda c: c[0] + '_' + c[1])
def test_node_and_bag_reader_give_the_same_pixels(bag, case):
    topic, encoding, big, data, step = case
    shape = (2, 4) if topic == '/depth_example' else (HEIGHT, WIDTH)
    served = image_msg_to_rgb(_rclpy_image(encoding, big, data, step, *shape))
    trained, _ = read_bag_frames(bag, topic)
    assert trained.shape == (1, *shape, 3)
    assert np.array_equal(served, trained[0]), encoding


def test_the_depth_example_means_distance(bag):
    frames, _ = read_bag_frames(bag, '/depth_example')
    assert frames[0, 0, :, 0].tolist() == [0, 26, 38, 51]  # 0 (no return), 1, 1.5, 2 m of 10


@pytest.mark.parametrize('topic', ['/compressed_png_uint16', '/compressed_png_uint8',
                                   '/compressed_jpeg_uint8'])
def test_compressed_frames_agree_too(bag, topic):
    fmt = topic.split('_')[1]
    trained, _ = read_bag_frames(bag, topic)
    source = {'/compressed_png_uint16': _picture(99).astype(np.uint16) * 257,
              '/compressed_png_uint8': _picture(98),
              '/compressed_jpeg_uint8': _picture(97)}[topic]
    ok, buf = cv2.imencode(f'.{fmt}', source)
    msg = CompressedImage(format=fmt)
    msg.data = buf.tobytes()
    served = image_msg_to_rgb(msg)
    assert np.array_equal(served, trained[0])
    if fmt == 'png':  # lossless: the picture itself, in RGB order
        assert np.array_equal(served, _picture(99 if source.dtype == np.uint16 else 98)[..., ::-1])
