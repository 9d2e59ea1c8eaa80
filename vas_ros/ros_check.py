"""A two-process DDS round trip: the check behind `vas-ros doctor` and the tests.

`python -m vas_ros.ros_check talk TOPIC SECONDS` publishes numbered std_msgs/String
messages; `round_trip()` starts that talker in a child process and listens for it here.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid


def talk(topic: str, seconds: float) -> int:
    import rclpy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node(f'vas_ros_probe_talker_{uuid.uuid4().hex[:8]}')
    pub = node.create_publisher(String, topic, 10)
    deadline = time.monotonic() + seconds
    count = 0
    try:
        while time.monotonic() < deadline:
            count += 1
            pub.publish(String(data=f'probe {count}'))
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def round_trip(timeout: float = 20.0, env: dict | None = None) -> tuple[bool, str]:
    """Start a talker process and wait for one of its messages in this process."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    topic = f'vas_ros_probe_{uuid.uuid4().hex[:8]}'
    talker = subprocess.Popen(
        [sys.executable, '-m', 'vas_ros.ros_check', 'talk', topic, str(timeout)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    received: list[str] = []
    start = time.monotonic()
    try:
        node = rclpy.create_node('vas_ros_probe_listener', context=context)
        node.create_subscription(String, topic, lambda m: received.append(m.data), 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        while not received and time.monotonic() - start < timeout:
            executor.spin_once(timeout_sec=0.1)
            if talker.poll() is not None and not received:
                break
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        talker.terminate()
        try:
            out, _ = talker.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            talker.kill()
            out, _ = talker.communicate()
    elapsed = time.monotonic() - start
    if received:
        return True, f'received {received[0]!r} from pid {talker.pid} after {elapsed:.2f} s'
    detail = (out or '').strip().splitlines()[-3:]
    return False, f'no message from the talker within {elapsed:.1f} s; talker said: {detail}'


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'talk':
        sys.exit(talk(sys.argv[2], float(sys.argv[3])))
    print('usage: python -m vas_ros.ros_check talk TOPIC SECONDS', file=sys.stderr)
    sys.exit(2)
