"""Image frames from rosbag2 recordings (sqlite3 or MCAP), read with `rosbags`, no ROS needed.

A bag is a directory with metadata.yaml, or a single .db3 / .mcap file. Frames come from
one sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage topic. Times are the bag's
record timestamps, measured in seconds from the bag's first message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vas_ros.data import image_codec
from vas_ros.data.image_codec import ImageError
from vas_ros.data.transforms import resize_frame
from vas_ros.errors import DataError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')

@dataclass(frozen=True)
class RosbagSource:
    """A bag plus a CSV of labelled spans (`label,start_s,end_s[,split][,topic]`)."""

    bag: Path
    labels: Path
    topic: str | None = None

    def __post_init__(self):
        object.__setattr__(self, 'bag', Path(self.bag))
        object.__setattr__(self, 'labels', Path(self.labels))


def is_rosbag(path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / 'metadata.yaml').is_file()
    return path.suffix in ('.mcap', '.db3') and path.is_file()


def image_msg_to_rgb(msg, where: str = 'image') -> np.ndarray:
    """uint8 RGB [H, W, 3] from a sensor_msgs Image or CompressedImage, through the robot
    node's own decoder (`vas_ros.data.image_codec.image_msg_to_rgb`), so training sees the
    pixels the robot will see; a frame that does not decode is a DataError naming `where`."""
    try:
        return image_codec.image_msg_to_rgb(msg)
    except ImageError as exc:
        raise DataError(f'{where}: {exc}') from None


def _open(bag):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    bag = Path(bag)
    if not bag.exists():
        raise DataError(f'{bag}: rosbag2 not found')
    if not is_rosbag(bag):
        raise DataError(f'{bag}: not a rosbag2 (need a directory with metadata.yaml, or a '
                        f'.db3 / .mcap file)')
    try:
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for broken bags
        raise DataError(f'{bag}: cannot open rosbag2: {exc}') from None
    return reader


def bag_topics(bag) -> dict[str, str]:
    """{topic: message type} of every topic in the bag."""
    reader = _open(bag)
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def _image_connections(reader, bag: Path, topic: str | None):
    topics = {c.topic: c.msgtype for c in reader.connections}
    images = sorted(t for t, m in topics.items() if m in IMAGE_TYPES)
    if topic is None:
        if len(images) != 1:
            raise DataError(f'{bag}: name the image topic; the bag has '
                            f'{images or "no"} Image/CompressedImage topics')
        topic = images[0]
    if topic not in topics:
        raise DataError(f'{bag}: has no topic {topic!r}; its image topics are {images}, all '
                        f'topics {sorted(topics)}')
    if topics[topic] not in IMAGE_TYPES:
        raise DataError(f'{bag}: topic {topic!r} carries {topics[topic]}, not '
                        f'Image/CompressedImage')
    return topic, [c for c in reader.connections if c.topic == topic]


def bag_span_counts(bag, topic: str | None, spans) -> tuple[str, float, list[int]]:
    """(topic, bag duration s, number of image messages in each (start_s, end_s) span).

    Checks the topic; reads no image data beyond the raw records.
    """
    bag = Path(bag)
    reader = _open(bag)
    try:
        topic, connections = _image_connections(reader, bag, topic)
        t0 = reader.start_time
        stamps = np.array([t for _, t, _ in reader.messages(connections)], np.int64)
        duration = (reader.end_time - t0) / 1e9
    finally:
        reader.close()
    rel = (stamps - t0) / 1e9
    counts = [int(np.count_nonzero((rel >= (s or 0.0)) & (rel < (e if e is not None
                                                                  else np.inf))))
              for s, e in spans]
    return topic, duration, counts


def read_bag_frames(bag, topic: str | None = None, start_s: float | None = None,
                    end_s: float | None = None, size: int | None = None
                    ) -> tuple[np.ndarray, float]:
    """uint8 RGB frames [N, H, W, 3] of `topic` in [start_s, end_s) and their mean rate;
    with `size`, each resized to size x size as it is decoded (`resize_frame`)."""
    bag = Path(bag)
    reader = _open(bag)
    frames, stamps, shape = [], [], None
    try:
        topic, connections = _image_connections(reader, bag, topic)
        t0 = reader.start_time
        start = t0 + int(round((start_s or 0.0) * 1e9))
        stop = None if end_s is None else t0 + int(round(end_s * 1e9))
        for connection, stamp, raw in reader.messages(connections, start=start, stop=stop):
            where = f'{bag} topic {topic} at {(stamp - t0) / 1e9:.3f} s'
            try:
                msg = reader.deserialize(raw, connection.msgtype)
            except Exception as exc:
                raise DataError(f'{where}: message does not deserialise: {exc}') from None
            frame = image_msg_to_rgb(msg, where)
            if shape is not None and frame.shape != shape:
                raise DataError(f'{where}: image size {frame.shape[1]}x{frame.shape[0]} '
                                f'differs from the span\'s first image '
                                f'{shape[1]}x{shape[0]}')
            shape = frame.shape
            frames.append(frame if size is None else resize_frame(frame, size))
            stamps.append(stamp)
    finally:
        reader.close()
    if not frames:
        raise DataError(f'{bag}: no images on {topic} in [{start_s}, {end_s}) s')
    rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9) if len(stamps) > 1 and \
        stamps[-1] > stamps[0] else 0.0
    return np.stack(frames), rate
