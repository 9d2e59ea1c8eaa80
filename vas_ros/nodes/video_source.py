"""`video_source`: a camera stand-in that publishes a video file or synthetic clips.

With `video` set it plays that file (any format PyAV reads) at its native rate or `fps`;
without it, it renders synthetic clips of the known classes (`vas_ros.data.synth`) one
after another, in a cycle or random order, and publishes each clip's true label on
`~/label`, i.e. `video_source/label` (String JSON: label, clip index, first and last
frame stamps) so a demo or test can score what `activity_recognizer` says. Frames go out as
sensor_msgs/Image on `image` with RELIABLE QoS (a best-effort subscriber matches it),
stamped with the time they are published and the configured frame_id.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vas_ros.data.image_codec import encode_raw
from vas_ros.errors import VasError
from vas_ros.nodes.common import declare_checked, sensor_qos, stamp_to_sec

NODE_NAME = 'video_source'

PARAMETERS = {
    'video': ('', "video file to play; '' = synthetic clips"),
    'fps': (0.0, 'publish rate; 0 = the file\'s native rate (synthetic: 15)'),
    'loop': (True, 'start again at the end of the file'),
    'frame_id': ('camera', 'header.frame_id of every frame'),
    'encoding': ('rgb8', 'encoding of published frames (rgb8, bgr8, mono8, yuv422, ...)'),
    'size': (112, 'synthetic frame size in pixels (square)'),
    'clip_frames': (16, 'frames per synthetic clip'),
    'classes': ([''], "synthetic classes to show; [''] = all"),
    'order': ('cycle', 'synthetic class order: cycle or random'),
    'seed': (0, 'random seed for synthetic clips'),
    'max_clips': (0, 'stop after this many synthetic clips or file loops; 0 = never'),
    'queue_depth': (10, 'publisher queue depth'),
}


class VideoSource(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        declare_checked(self, {name: (default, ParameterDescriptor(description=text))
                               for name, (default, text) in PARAMETERS.items()})
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.params = p
        self._pub = self.create_publisher(Image, 'image',
                                          sensor_qos('reliable', int(p['queue_depth'])))
        self._pub_label = self.create_publisher(String, '~/label', 10)
        self.published = 0
        self.clips = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        if p['video']:
            from vas_ros.data.video_io import read_video

            self._frames, native = read_video(p['video'])
            self.fps = float(p['fps']) or native
            self._classes = []
        else:
            from vas_ros.data.synth import CLASSES

            wanted = [c for c in p['classes'] if c]
            unknown = sorted(set(wanted) - set(CLASSES))
            if unknown:
                raise VasError(f'video_source: unknown synthetic classes {unknown}; '
                               f'known: {list(CLASSES)}')
            self._classes = wanted or list(CLASSES)
            self._frames = None
            self.fps = float(p['fps']) or 15.0
        if self.fps <= 0:
            raise VasError(f'video_source: fps must be > 0, got {self.fps}')
        self._rng = np.random.default_rng(int(p['seed']))
        self._thread = threading.Thread(target=self._run, name='video_source', daemon=True)
        self._thread.start()
        what = p['video'] or f'synthetic clips of {len(self._classes)} classes'
        self.get_logger().info(f'publishing {what} on {self._pub.topic_name} at '
                               f'{self.fps:.1f} fps ({p["encoding"]})')

    def _clips(self):
        """(label or None, frames) forever, or up to max_clips."""
        from vas_ros.data.synth import render_clip

        limit = int(self.params['max_clips'])
        count = 0
        while not self._stop.is_set() and (limit <= 0 or count < limit):
            if self._frames is not None:
                yield None, self._frames
                if not self.params['loop']:
                    return
            else:
                if self.params['order'] == 'random':
                    label = self._classes[int(self._rng.integers(len(self._classes)))]
                else:
                    label = self._classes[count % len(self._classes)]
                yield label, render_clip(label, self._rng, size=int(self.params['size']),
                                         frames=int(self.params['clip_frames']))
            count += 1

    def _run(self) -> None:
        period = 1.0 / self.fps
        next_time = time.monotonic()
        try:
            for label, frames in self._clips():
                first_stamp = None
                last = None
                for frame in frames:
                    if self._stop.is_set():
                        return
                    delay = next_time - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    next_time = max(next_time + period, time.monotonic() - period)
                    msg = self.make_image(frame)
                    self._pub.publish(msg)
                    self.published += 1
                    last = msg.header.stamp
                    if first_stamp is None:
                        first_stamp = last
                if label is not None and last is not None:
                    self._pub_label.publish(String(data=json.dumps(
                        {'label': label, 'clip_index': self.clips,
                         'first_stamp': stamp_to_sec(first_stamp),
                         'last_stamp': stamp_to_sec(last)})))
                self.clips += 1
        except Exception as exc:  # the context may be gone at shutdown
            if not self._stop.is_set():
                self.get_logger().error(f'video_source stopped: {type(exc).__name__}: {exc}')
        finally:
            self.finished.set()

    def make_image(self, frame: np.ndarray) -> Image:
        data, step = encode_raw(frame, self.params['encoding'])
        msg = Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params['frame_id']
        msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
        msg.encoding = self.params['encoding']
        msg.is_bigendian = 0
        msg.step = step
        msg.data = data
        return msg

    def destroy_node(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        return super().destroy_node()


def main(argv=None) -> int:
    from vas_ros.nodes.common import run_single, use_large_frame_transport

    use_large_frame_transport()  # frames over 512 KB through shared memory, not UDP
    return run_single(VideoSource, argv)


if __name__ == '__main__':
    raise SystemExit(main())
