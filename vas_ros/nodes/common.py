"""Small rclpy helpers the nodes share: QoS from parameters, stamps, spinning a node."""

from __future__ import annotations

import sys

RELIABILITIES = ('best_effort', 'reliable')


def sensor_qos(reliability: str = 'best_effort', depth: int = 1):
    """Keep-last QoS for camera streams; best_effort matches both kinds of publisher."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    text = str(reliability).strip().lower()
    if text not in RELIABILITIES:
        raise ValueError(f'reliability must be one of {RELIABILITIES}, got {reliability!r}')
    if int(depth) < 1:
        raise ValueError(f'queue_depth must be >= 1, got {depth}')
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=(ReliabilityPolicy.BEST_EFFORT if text == 'best_effort'
                                   else ReliabilityPolicy.RELIABLE),
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos():
    """Reliable + transient-local, depth 1: late subscribers get the last message."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_dict(stamp) -> dict:
    return {'sec': int(stamp.sec), 'nanosec': int(stamp.nanosec)}


def sec_to_stamp(seconds: float):
    from builtin_interfaces.msg import Time

    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def spin_nodes(nodes, threads: int = 4, args=None) -> int:
    """Run nodes in one MultiThreadedExecutor until Ctrl-C or shutdown; return exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


def run_single(node_factory, argv=None) -> int:
    """`main()` of a node executable: init with ROS args, build, spin, clean up."""
    import rclpy

    # rclpy's default signal handlers turn SIGINT and SIGTERM into a clean shutdown.
    from vas_ros.errors import VasError

    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = node_factory()
    except VasError as exc:
        print(f'error: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    return spin_nodes([node])
