"""`activity_recognizer`: camera frames in, activity labels out.

The image callback only decodes the frame and pushes it into a `FrameBuffer`; clips go to
a worker thread through a one-slot mailbox, so a slow model never blocks the camera and
never works on stale frames: a clip that is still waiting when a newer one arrives is
dropped and counted. Parameters changed at run time (model, thresholds, hop, ...) take
effect at once; a model that fails to load is rejected and the old one keeps running.

Topics (relative, remap as usual): sub `image` (sensor_msgs/Image) or `image/compressed`
(CompressedImage, with `image_transport: compressed`); pub `activity/result`
(vas_ros/ActivityResult: the clip's last-frame header, its window, top-k, latencies),
`activity/labels` (vas_ros/LabelInfo, transient-local, once per model), `activity`
(std_msgs/String, the top-1 label or `unknown`, for consumers that only want the word),
`activity/image` (annotated Image, built only while subscribed) and `/diagnostics`.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import threading
import time
from collections import Counter, deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from vas_ros.data.image_codec import ImageError, image_msg_to_rgb
from vas_ros.data.transforms import resize_frame
from vas_ros.errors import VasError
from vas_ros.models.spec import reported_label
from vas_ros.nodes.activity_msgs import interfaces, label_info_message, result_message
from vas_ros.nodes.common import (
    declare_checked,
    descriptor,
    image_qos_overrides,
    latched_qos,
    sensor_qos,
    stamp_to_sec,
)
from vas_ros.perception.engine import DEFAULT_MODEL, INFERENCE_MODES, InferenceEngine
from vas_ros.perception.frame_buffer import FrameBuffer

NODE_NAME = 'activity_recognizer'

# name -> (default, description); the type follows the default.
PARAMETERS = {
    'model': (DEFAULT_MODEL, 'checkpoint path or shipped model name'),
    'device': ('auto', 'auto, cpu, cuda or cuda:N'),
    'inference_path': ('eager', 'eager, channels_last, bf16, compile, compile_bf16, int8, '
                                'onnxruntime or auto (the fastest agreeing path, measured '
                                'here and cached)'),
    'hop_frames': (4, 'run the model every N input frames (once a clip is full)'),
    'inference_mode': ('auto', 'clip: rerun the whole clip every hop_frames; stream: run '
                               'each new frame once through a causal model (at hop 1, a '
                               'result per frame for one frame of compute; inference_path '
                               'eager, onnxruntime or auto); auto: stream when the model '
                               'can'),
    'stride_seconds': (0.0, 'take clip frames this far apart in stamp time; 0 = every '
                            "frame_stride source frames as the model was trained"),
    'score_threshold': (0.0, 'below this top-1 score (or when the top class is '
                               '`none`) `activity` says unknown'),
    'top_k': (5, 'how many labels activity/result lists'),
    'flow_method': ('', "optical flow for flow models; '' = the model's own"),
    'num_threads': (0, 'torch CPU threads; 0 = leave the default'),
    'image_transport': ('raw', "raw: subscribe to image (sensor_msgs/Image); compressed: to "
                               "image/compressed (CompressedImage), as image_transport names it"),
    'diagnostics_period': (1.0, 'seconds between /diagnostics messages'),
    'autostart': (True, 'configure and activate at start-up; false: wait for a lifecycle '
                        'manager (ros2 lifecycle set ... configure / activate)'),
}
READ_ONLY = ('image_transport', 'diagnostics_period', 'autostart')
# Bounds that `ros2 param describe` and rqt show, and that rclpy enforces on every set.
RANGES = {'hop_frames': (1, 10_000), 'top_k': (1, 1000), 'score_threshold': (0.0, 1.0),
          'stride_seconds': (0.0, 60.0), 'num_threads': (0, 1024),
          'diagnostics_period': (0.01, 3600.0)}


STREAM_NEEDS_COUNTED_FRAMES = ('inference_mode stream samples frames by count '
                               '(frame_stride); set stride_seconds 0 or use inference_mode '
                               'clip')
ENGINE_PARAMS = ('model', 'device', 'inference_path', 'num_threads', 'inference_mode')


class _Mailbox:
    """One pending clip: putting a new one replaces (drops) the one not yet taken."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self.closed = False

    def put(self, item) -> bool:
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
            return dropped

    def take(self, timeout: float = 0.5):
        with self._cond:
            if self._item is None and not self.closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class ActivityNode(LifecycleNode):
    """A managed node: configure loads the model, activate starts taking frames, deactivate
    stops, cleanup frees the model (GPU memory included). With `autostart` (the default) it
    configures and activates itself; without, a lifecycle manager drives it."""

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        declare_checked(self, {name: (default, descriptor(text, RANGES.get(name),
                                                          name in READ_ONLY))
                               for name, (default, text) in PARAMETERS.items()})
        problem = self._check({name: self._param(name) for name in PARAMETERS})
        if problem:  # start-up values get the same checks as live changes
            raise VasError(f'{NODE_NAME}: {problem}')
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._logged: set[str] = set()
        self.bad_frames: Counter = Counter()
        self.frames_received = 0
        self.inferences = 0
        self.dropped_clips = 0
        self.inference_errors = 0
        self._arrivals: deque = deque(maxlen=300)
        self._callback_ms: deque = deque(maxlen=300)
        self._latency_ms: deque = deque(maxlen=100)
        self._last_label = ''
        self._latest_frame: np.ndarray | None = None
        self._frame_shape: tuple | None = None
        self._restart_streams = ''
        self.model_error = ''

        self._engine: InferenceEngine | None = None
        self._buffer: FrameBuffer | None = None
        self._sub = None
        self._worker: threading.Thread | None = None
        self._mailbox = _Mailbox()
        self._mailbox.close()  # opened on activate
        self._image_group = MutuallyExclusiveCallbackGroup()

        ActivityResult, _, LabelInfo = interfaces()
        self._pub_activity = self.create_publisher(String, 'activity', 10)
        self._pub_result = self.create_publisher(ActivityResult, 'activity/result', 10)
        self._pub_labels = self.create_publisher(LabelInfo, 'activity/labels', latched_qos())
        self._pub_image = self.create_publisher(Image, 'activity/image', 2)
        self._pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.add_on_set_parameters_callback(self._on_parameters)
        self._diag_timer = self.create_timer(float(self._param('diagnostics_period')),
                                             self._publish_diagnostics,
                                             callback_group=MutuallyExclusiveCallbackGroup())
        if self._param('autostart'):
            self.trigger_configure()
            if self.lifecycle_state == 'inactive':
                self.trigger_activate()

    @property
    def lifecycle_state(self) -> str:
        """unconfigured, inactive, active or finalized."""
        return self._state_machine.current_state[1]

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        problem = self._check({name: self._param(name) for name in PARAMETERS})
        try:
            engine = None if problem else self._make_engine({})
        except VasError as exc:
            problem = f'no model loaded: {exc}'
        except Exception as exc:  # a model that loads but cannot run, say
            problem = f'could not load model: {type(exc).__name__}: {exc}'
        if problem:
            self.model_error = problem
            self.get_logger().error(f'configure refused: {problem}; fix the parameter, then '
                                    f'configure again (ros2 lifecycle set '
                                    f'{self.get_fully_qualified_name()} configure)')
            return TransitionCallbackReturn.FAILURE
        with self._lock:
            self._engine, self.model_error = engine, ''
            self._buffer = self._make_buffer(engine, {})
        self.get_logger().info(f'configured: {engine.name} on {engine.device}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        # QoS: best_effort, keep_last 1 unless the rclpy QoS overrides of the image topic
        # say otherwise (`qos_overrides.<topic>.subscription.reliability` and depth).
        msg_type, topic, callback = ((CompressedImage, 'image/compressed', self._on_compressed)
                                     if self._param('image_transport') == 'compressed' else
                                     (Image, 'image', self._on_image))
        qos = sensor_qos()  # rclpy applies the overrides to this profile in place
        try:
            self._sub = self.create_subscription(
                msg_type, topic, callback, qos, callback_group=self._image_group,
                qos_overriding_options=image_qos_overrides())
        except Exception as exc:  # rclpy's InvalidQosOverridesError or RuntimeError
            self.model_error = f'image QoS: {exc}'
            self.get_logger().error(f'activate refused: {self.model_error}')
            return TransitionCallbackReturn.FAILURE
        self._mailbox = _Mailbox()
        self._worker = threading.Thread(target=self._work, args=(self._mailbox,),
                                        name='activity_inference', daemon=True)
        self._worker.start()
        self._publish_labels()
        self.get_logger().info(f'active: listening on {self._sub.topic_name} '
                               f'({qos.reliability.name.lower()}, depth {qos.depth}) with '
                               f'{self._engine.name} on {self._engine.device}')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._stop_taking_frames()
        self.get_logger().info('inactive: no longer taking frames')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._unload()
        self.get_logger().info('unconfigured: model unloaded')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._stop_taking_frames()
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self._stop_taking_frames()
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def _stop_taking_frames(self) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        self._mailbox.close()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=10.0)
        self._worker = None

    def _unload(self) -> None:
        """Drop the model and everything sized by it; give cached GPU memory back."""
        with self._lock:
            self._engine = self._buffer = None
            self._latest_frame = None
        gc.collect()
        torch = sys.modules.get('torch')
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------- parameters
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _make_engine(self, changes: dict) -> InferenceEngine:
        value = {name: changes.get(name, self._param(name))
                 for name in ENGINE_PARAMS + ('flow_method', 'stride_seconds')}
        mode = value['inference_mode']
        if float(value['stride_seconds']) > 0:  # stream phases follow frame counts
            if mode == 'stream':
                raise VasError(STREAM_NEEDS_COUNTED_FRAMES)
            mode = 'clip'
        return InferenceEngine(value['model'], device=value['device'],
                               num_threads=value['num_threads'], path=value['inference_path'],
                               flow_method=value['flow_method'], mode=mode)

    def _make_buffer(self, engine: InferenceEngine, changes: dict) -> FrameBuffer:
        stride_s = float(changes.get('stride_seconds', self._param('stride_seconds')))
        hop = int(changes.get('hop_frames', self._param('hop_frames')))
        return FrameBuffer(engine.spec.frames, engine.spec.frame_stride, hop=hop,
                           stride_seconds=stride_s if stride_s > 0 else None)

    def _on_parameters(self, params) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        problem = self._check(changes)
        if problem:
            self.get_logger().warning(f'parameter change rejected: {problem}')
            return SetParametersResult(successful=False, reason=problem)
        engine = self._engine
        if engine is None:  # unconfigured: the values are used by the next configure
            return SetParametersResult(successful=True)
        # stride_seconds decides between stream and clip for `auto` (and is refused for
        # `stream`), so it rebuilds the engine unless the mode is clip.
        mode = changes.get('inference_mode', self._param('inference_mode'))
        if any(name in changes for name in ENGINE_PARAMS) or (
                'stride_seconds' in changes and mode != 'clip'):
            try:
                engine = self._make_engine(changes)
            except VasError as exc:
                reason = f'kept {self._engine.name if self._engine else "no model"}: {exc}'
                self.get_logger().error(f'parameter change rejected: {reason}')
                return SetParametersResult(successful=False, reason=reason)
            except Exception as exc:  # a model that loads but cannot run, say
                reason = f'could not load model: {type(exc).__name__}: {exc}'
                self.get_logger().error(f'parameter change rejected: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        elif engine is not None and 'flow_method' in changes:
            try:
                engine.set_flow_method(changes['flow_method'])
            except VasError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        new_buffer = engine is not self._engine or 'stride_seconds' in changes
        with self._lock:
            if engine is not self._engine:
                self._engine = engine
                self.model_error = ''
                self.get_logger().info(f'now running {engine.name} on {engine.device} '
                                       f'({len(engine.classes)} classes)')
            if engine is not None and new_buffer:
                self._buffer = self._make_buffer(engine, changes)
            elif self._buffer is not None and 'hop_frames' in changes:
                self._buffer.hop = int(changes['hop_frames'])
        if self.lifecycle_state == 'active' and any(
                name in changes for name in (*ENGINE_PARAMS, 'score_threshold')):
            # The new values are not set yet while this callback runs.
            self._publish_labels(changes.get('score_threshold'))
        return SetParametersResult(successful=True)

    @staticmethod
    def _check(changes: dict) -> str:
        if 'image_transport' in changes and changes['image_transport'] not in ('raw',
                                                                               'compressed'):
            return f'image_transport must be raw or compressed, got {changes["image_transport"]!r}'
        if 'hop_frames' in changes and int(changes['hop_frames']) < 1:
            return f'hop_frames must be >= 1, got {changes["hop_frames"]}'
        if 'top_k' in changes and int(changes['top_k']) < 1:
            return f'top_k must be >= 1, got {changes["top_k"]}'
        if 'score_threshold' in changes and not 0.0 <= float(changes['score_threshold']) <= 1.0:
            return f'score_threshold must be in [0, 1], got {changes["score_threshold"]}'
        if 'stride_seconds' in changes and float(changes['stride_seconds']) < 0:
            return f'stride_seconds must be >= 0, got {changes["stride_seconds"]}'
        if 'inference_mode' in changes and changes['inference_mode'] not in INFERENCE_MODES:
            return (f'inference_mode must be one of {", ".join(INFERENCE_MODES)}, got '
                    f'{changes["inference_mode"]!r}')
        if changes.get('inference_mode') == 'stream' and float(
                changes.get('stride_seconds', 0.0)) > 0:
            return STREAM_NEEDS_COUNTED_FRAMES
        if 'num_threads' in changes and int(changes['num_threads']) < 0:
            return f'num_threads must be >= 0, got {changes["num_threads"]}'
        for name, value in changes.items():
            if name in RANGES and not math.isfinite(float(value)):
                return f'{name} must be a finite number, got {value}'
        return ''

    # ---------------------------------------------------------------- input
    def _bad_frame(self, cause: str, message: str) -> None:
        with self._stats_lock:
            self.bad_frames[cause] += 1
            first = cause not in self._logged
            self._logged.add(cause)
        if first:
            self.get_logger().warning(f'dropping bad frame ({cause}): {message} '
                                      f'(further frames with this problem are only counted '
                                      f'in /diagnostics)')

    def _on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            # The same decoder as the training data readers (no cv_bridge): the model sees
            # in service the pixels it was trained on.
            rgb = image_msg_to_rgb(msg)
        except ImageError as exc:
            self._bad_frame(exc.cause, str(exc))
            return
        self._accept(rgb, msg.header, start)

    def _on_compressed(self, msg: CompressedImage) -> None:
        start = time.perf_counter()
        try:
            rgb = image_msg_to_rgb(msg)
        except ImageError as exc:
            self._bad_frame(exc.cause, str(exc))
            return
        self._accept(rgb, msg.header, start)

    def _accept(self, rgb: np.ndarray, header, start: float) -> None:
        now = time.monotonic()
        stamp = stamp_to_sec(header.stamp)
        if stamp == 0.0:  # an unstamped driver: use arrival time
            stamp = time.time()
        buffer, engine = self._buffer, self._engine
        clip = None
        if self._frame_shape is not None and rgb.shape != self._frame_shape \
                and buffer is not None:
            # A new camera resolution: no clip mixes the two, and streams start over.
            buffer.clear()
            self._restart_streams = 'resolution change'
        self._frame_shape = rgb.shape
        if buffer is not None and engine is not None:
            # Only the model-sized frame is kept (the engine would resize it the same way):
            # a window of 4K or 8000 x 8000 frames would otherwise take gigabytes.
            self._latest_frame = rgb  # full size, for activity/image only
            clip = buffer.push(resize_frame(rgb, engine.spec.size), stamp,
                               meta=(header.stamp, header.frame_id), received=now)
        dropped = clip is not None and self._mailbox.put(clip)
        with self._stats_lock:
            self.frames_received += 1
            self._arrivals.append(now)
            self.dropped_clips += int(dropped)
            self._callback_ms.append((time.perf_counter() - start) * 1e3)

    # ---------------------------------------------------------------- inference
    def _work(self, mailbox: _Mailbox) -> None:
        while not mailbox.closed:
            clip = mailbox.take()
            if clip is None:
                continue
            engine = self._engine
            if engine is None:
                continue
            started = time.monotonic()
            try:
                top_k = int(self._param('top_k'))
                if engine.streams is None:
                    prediction = engine.infer(clip.frames, top_k=top_k)
                else:
                    restart, self._restart_streams = self._restart_streams, ''
                    if restart:
                        engine.streams.reset(restart)
                    prediction = engine.infer_stream(clip.frame_list, clip.stamps, top_k)
            except Exception as exc:  # keep running; say why once per kind of failure
                with self._stats_lock:
                    self.inference_errors += 1
                    first = f'infer:{type(exc).__name__}' not in self._logged
                    self._logged.add(f'infer:{type(exc).__name__}')
                if first:
                    self.get_logger().error(f'inference failed: {type(exc).__name__}: {exc}')
                continue
            try:
                self._publish(clip, engine, prediction, started)
            except Exception as exc:  # the context may be shutting down
                if rclpy.ok():
                    self.get_logger().error(f'publishing failed: {exc}')

    def _publish(self, clip, engine, prediction, started: float) -> None:
        threshold = float(self._param('score_threshold'))
        label = reported_label(prediction.label, prediction.score, threshold)
        latency = dict(prediction.latency_ms)
        latency['queue'] = (started - clip.received) * 1e3
        latency['node'] = (time.monotonic() - clip.received) * 1e3
        self._pub_result.publish(result_message(
            clip, prediction, label=label, model=engine.name, classes=engine.classes,
            latency_ms=latency, dropped_clips=self.dropped_clips))
        self._pub_activity.publish(String(data=label))
        with self._stats_lock:
            self.inferences += 1
            self._latency_ms.append(latency['total'])
            self._last_label = label
        if self._pub_image.get_subscription_count() > 0:
            self._pub_image.publish(self._annotate(self._latest_frame, clip.meta, label,
                                                   prediction.score))

    @staticmethod
    def _annotate(latest: np.ndarray, meta, label: str, score: float) -> Image:
        """The newest camera frame at full size with the label drawn on it."""
        import cv2

        frame = np.ascontiguousarray(latest).copy()
        scale = max(frame.shape[1] / 640.0, 0.4)
        text = f'{label} {score:.2f}'
        cv2.rectangle(frame, (0, 0), (frame.shape[1], int(28 * scale) + 4), (0, 0, 0), -1)
        cv2.putText(frame, text, (4, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale,
                    (255, 255, 0), max(1, int(2 * scale)), cv2.LINE_AA)
        msg = Image()
        msg.header.stamp, msg.header.frame_id = meta
        msg.height, msg.width = frame.shape[:2]
        msg.encoding = 'rgb8'
        msg.step = frame.shape[1] * 3
        msg.data = frame.tobytes()
        return msg

    # ---------------------------------------------------------------- outputs
    def _publish_labels(self, threshold: float | None = None) -> None:
        engine = self._engine
        if engine is None:
            return
        if threshold is None:
            threshold = self._param('score_threshold')
        self._pub_labels.publish(label_info_message(
            model=engine.name, checkpoint=str(engine.checkpoint_path), classes=engine.classes,
            threshold=float(threshold),
            stamp=self.get_clock().now().to_msg()))

    def stats(self) -> dict:
        """Counters and medians, as published on /diagnostics."""
        with self._stats_lock:
            now = time.monotonic()
            recent = [t for t in self._arrivals if now - t <= 5.0]
            rate = ((len(recent) - 1) / (recent[-1] - recent[0])
                    if len(recent) > 1 and recent[-1] > recent[0] else 0.0)
            engine = self._engine
            return {
                'model': engine.name if engine else '',
                'checkpoint': str(engine.checkpoint_path) if engine else '',
                'device': engine.device if engine else '',
                'lifecycle_state': self.lifecycle_state,
                'model_error': self.model_error,
                'input_rate_hz': round(rate, 2),
                'frames_received': self.frames_received,
                'bad_frames': sum(self.bad_frames.values()),
                'bad_frame_causes': dict(self.bad_frames),
                'clips_inferred': self.inferences,
                'dropped_clips': self.dropped_clips,
                'inference_errors': self.inference_errors,
                'inference_latency_ms': round(statistics.median(self._latency_ms), 3)
                if self._latency_ms else 0.0,
                'callback_ms': round(statistics.median(self._callback_ms), 4)
                if self._callback_ms else 0.0,
                'last_label': self._last_label,
                'inference_mode': engine.mode if engine else '',
                'stream_frames_run': engine.streams.frames_run if engine and engine.streams
                else 0,
                'stream_resets': dict(engine.streams.resets) if engine and engine.streams
                else {},
            }

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        status = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: activity recognition',
                                  hardware_id=stats['device'] or 'none')
        if not stats['model']:
            status.level = DiagnosticStatus.ERROR
            status.message = f'{stats["lifecycle_state"]}: {stats["model_error"] or "no model"}'
        elif stats['lifecycle_state'] != 'active':
            status.level = DiagnosticStatus.WARN
            status.message = ': '.join(filter(None, (stats['lifecycle_state'],
                                                    stats['model_error'])))
        elif stats['bad_frames'] or stats['inference_errors']:
            status.level, status.message = DiagnosticStatus.WARN, 'bad frames or failures seen'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'running'
        values = {k: v for k, v in stats.items() if k != 'bad_frame_causes'}
        values.update({f'bad_frames.{k}': v for k, v in stats['bad_frame_causes'].items()})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(array)

    def destroy_node(self):
        self._stop_taking_frames()
        return super().destroy_node()


def main(argv=None) -> int:
    from vas_ros.nodes.common import run_single

    return run_single(ActivityNode, argv)


if __name__ == '__main__':
    raise SystemExit(main())
