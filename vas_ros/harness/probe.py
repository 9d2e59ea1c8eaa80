"""A client that talks to running vas_ros nodes: tests, the benchmark and the demo use it.

`Probe` owns its own rclpy context and a spinning executor thread, so it can sit in any
process (pytest, a benchmark script) beside nodes started as child processes. It
publishes camera frames, records what arrives on chosen topics, sets parameters through
a node's parameter service and calls Trigger services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

import numpy as np


class Probe:
    def __init__(self, name: str = 'vas_ros_probe'):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f'{name}_{uuid.uuid4().hex[:6]}', context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self.messages: dict[str, list] = defaultdict(list)  # topic -> [(monotonic, msg)]
        self._publishers: dict = {}
        self._subs: list = []

    def _spin(self) -> None:
        try:
            while self._spinning:
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # the context went away while spinning
            pass

    def close(self) -> None:
        import rclpy

        from vas_ros.nodes.common import stop_executor

        self._spinning = False
        self._thread.join(timeout=5.0)
        stop_executor(self.executor, [self.node])
        rclpy.try_shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- topics
    def listen(self, topic: str, msg_type, qos=10, callback=None) -> None:
        """Record every message on `topic` (with its arrival time)."""
        def record(msg):
            now = time.monotonic()
            with self._lock:
                self.messages[topic].append((now, msg))
            if callback is not None:
                callback(now, msg)

        self._subs.append(self.node.create_subscription(msg_type, topic, record, qos))

    def received(self, topic: str) -> list:
        with self._lock:
            return [msg for _, msg in self.messages[topic]]

    def dicts(self, topic: str) -> list[dict]:
        """What arrived on `topic` as dicts: typed vas_ros messages field by field, JSON
        strings parsed."""
        from vas_ros.nodes.activity_msgs import message_dict

        return [message_dict(msg) for msg in self.received(topic)]

    def wait_for(self, predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())

    def publisher(self, topic: str, msg_type, qos=None):
        if topic not in self._publishers:
            from vas_ros.nodes.common import sensor_qos

            self._publishers[topic] = self.node.create_publisher(
                msg_type, topic, qos if qos is not None else sensor_qos('reliable', 10))
        return self._publishers[topic]

    def image(self, rgb: np.ndarray, encoding: str = 'rgb8', frame_id: str = 'camera',
              stamp=None, padding: int = 0):
        """A sensor_msgs/Image holding `rgb` in `encoding` (optionally with row padding)."""
        from sensor_msgs.msg import Image

        from vas_ros.data.image_codec import encode_raw

        data, step = encode_raw(rgb, encoding, padding=padding)
        msg = Image()
        msg.header.stamp = stamp if stamp is not None else self.node.get_clock().now().to_msg()
        msg.header.frame_id = frame_id
        msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
        msg.encoding, msg.step, msg.data = encoding, step, data
        return msg

    def publish_image(self, topic: str, msg) -> None:
        from sensor_msgs.msg import Image

        self.publisher(topic, Image).publish(msg)

    def wait_for_subscriber(self, topic: str, msg_type, timeout: float = 30.0) -> bool:
        pub = self.publisher(topic, msg_type)
        return self.wait_for(lambda: pub.get_subscription_count() > 0, timeout)

    # ---------------------------------------------------------------- actions
    def send_goal(self, action_type, name: str, goal, timeout: float = 30.0) -> GoalRun:
        """Send `goal` to the action server `name`; feedback is recorded as it arrives."""
        from rclpy.action import ActionClient

        client = ActionClient(self.node, action_type, name)
        self._subs.append(client)  # keep it alive as long as the probe
        if not client.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f'action server {name} not available after {timeout} s')
        feedback: list = []
        handle = _wait(client.send_goal_async(
            goal, feedback_callback=lambda msg: feedback.append(msg.feedback)), timeout,
            f'action server {name} did not answer the goal within {timeout} s')
        return GoalRun(client, handle, feedback)

    # ---------------------------------------------------------------- services
    def _call(self, srv_type, name: str, request, timeout: float):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {name} not available after {timeout} s')
            return _wait(client.call_async(request), timeout,
                         f'service {name} did not answer within {timeout} s')
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node: str, values: dict, timeout: float = 60.0) -> list:
        """Set parameters on `node`; returns [(successful, reason)] in the given order."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        name = (node if node.startswith('/') else '/' + node) + '/set_parameters'
        response = self._call(SetParameters, name, request, timeout)
        return [(r.successful, r.reason) for r in response.results]

    def get_parameters(self, node: str, names: list[str], timeout: float = 30.0) -> dict:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        name = (node if node.startswith('/') else '/' + node) + '/get_parameters'
        response = self._call(GetParameters, name, GetParameters.Request(names=names), timeout)
        return {n: parameter_value_to_python(v) for n, v in zip(names, response.values)}

    def trigger(self, service: str, timeout: float = 30.0) -> tuple[bool, str]:
        from std_srvs.srv import Trigger

        response = self._call(Trigger, service, Trigger.Request(), timeout)
        return response.success, response.message


class GoalRun:
    """One action goal sent by a Probe: whether it was accepted, its feedback as it came,
    cancel, and the final (status, result)."""

    def __init__(self, client, handle, feedback: list):
        self.client, self.handle, self.feedback = client, handle, feedback

    @property
    def accepted(self) -> bool:
        return bool(self.handle is not None and self.handle.accepted)

    def cancel(self, timeout: float = 30.0):
        return _wait(self.handle.cancel_goal_async(), timeout,
                     f'no answer to the cancel request within {timeout} s')

    def result(self, timeout: float = 300.0):
        """(GoalStatus code, result message)."""
        answer = _wait(self.handle.get_result_async(), timeout,
                       f'no result within {timeout} s')
        return answer.status, answer.result


def _wait(future, timeout: float, message: str):
    """The result of an rclpy future that the probe's spinning thread completes; a
    TimeoutError with `message` if it does not within `timeout` seconds."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        raise TimeoutError(message)
    return future.result()


def start_node(module: str, params: dict, env: dict | None = None, log_path=None,
               remaps: dict | None = None) -> subprocess.Popen:
    """Start `python -m vas_ros.nodes.<module> --ros-args -p k:=v ...` as a child process."""
    args = [sys.executable, '-m', f'vas_ros.nodes.{module}', '--ros-args']
    for key, value in params.items():
        if isinstance(value, bool):
            text = 'true' if value else 'false'
        elif isinstance(value, str):
            text = json.dumps(value)
        elif isinstance(value, (list, tuple)):
            text = json.dumps(list(value))
        else:
            text = str(value)
        args += ['-p', f'{key}:={text}']
    for old, new in (remaps or {}).items():
        args += ['-r', f'{old}:={new}']
    out = open(log_path, 'wb') if log_path else subprocess.DEVNULL
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault('PYTHONUNBUFFERED', '1')
    return subprocess.Popen(args, env=child_env, stdout=out, stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT (rclpy shuts down cleanly), then kill if it hangs."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
