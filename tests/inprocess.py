"""In-process nodes for tests: real rclpy, real DDS, no subprocess."""

from __future__ import annotations

import threading


class RunningNode:
    """A vas_ros node built in this process, spun by its own executor thread in its own
    rclpy context (so it talks to the test's Probe over DDS, like another process)."""

    def __init__(self, node_class, namespace: str, **params):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = node_class(
            context=self.context, namespace=namespace,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.spinning = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.spinning:
            self.executor.spin_once(timeout_sec=0.05)

    def set(self, **params) -> list:
        from rclpy.parameter import Parameter

        return self.node.set_parameters([Parameter(k, value=v) for k, v in params.items()])

    def close(self) -> None:
        import rclpy

        from vas_ros.nodes.common import stop_executor

        mailbox = getattr(self.node, '_mailbox', None)  # the recogniser's inference thread
        if mailbox is not None:
            mailbox.close()
        self.spinning = False
        self.thread.join(timeout=5.0)
        stop_executor(self.executor, [self.node])
        rclpy.try_shutdown(context=self.context)
