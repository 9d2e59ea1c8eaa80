"""Small rclpy helpers the nodes share: QoS profiles and overrides, stamps, spinning a node."""

from __future__ import annotations

import os
import sys
from pathlib import Path

RELIABILITIES = ('best_effort', 'reliable', 'best_available')
LARGE_FRAMES_PROFILE = 'fastdds_large_frames.xml'


def sensor_qos(reliability: str = 'best_effort', depth: int = 1):
    """Keep-last QoS for camera streams; best_effort matches both kinds of publisher.

    `best_available` (rclpy Iron and later) becomes reliable when every publisher is; on
    Humble it falls back to best_effort.
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from vas_ros.errors import VasError

    text = str(reliability).strip().lower()
    if text not in RELIABILITIES:
        raise VasError(f'reliability must be one of {RELIABILITIES}, got {reliability!r}')
    if int(depth) < 1:
        raise VasError(f'queue_depth must be >= 1, got {depth}')
    policy = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
              'reliable': ReliabilityPolicy.RELIABLE,
              'best_available': getattr(ReliabilityPolicy, 'BEST_AVAILABLE',
                                        ReliabilityPolicy.BEST_EFFORT)}[text]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=policy,
                      durability=DurabilityPolicy.VOLATILE)


MAX_IMAGE_QUEUE = 1000


def image_qos_overrides():
    """rclpy's QoS overriding options for the image subscription: reliability, history,
    depth and durability are read-only start-up parameters named after the resolved topic,
    e.g. `qos_overrides./robot1/camera/image_raw.subscription.reliability: reliable` (the
    same names rclcpp nodes use). The default profile is `sensor_qos()`."""
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.qos import HistoryPolicy, QoSPolicyKind
    from rclpy.qos_overriding_options import QoSOverridingOptions

    def check(qos) -> SetParametersResult:
        if qos.history == HistoryPolicy.KEEP_LAST and not 1 <= qos.depth <= MAX_IMAGE_QUEUE:
            return SetParametersResult(successful=False, reason=(
                f'depth must be in [1, {MAX_IMAGE_QUEUE}] (keep it small: stale frames), '
                f'got {qos.depth}'))
        if qos.history == HistoryPolicy.KEEP_ALL:
            return SetParametersResult(successful=False, reason=(
                'history keep_all would queue frames without bound; use keep_last'))
        return SetParametersResult(successful=True)

    return QoSOverridingOptions(policy_kinds=(QoSPolicyKind.RELIABILITY,
                                              QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH,
                                              QoSPolicyKind.DURABILITY), callback=check)


def qos_override_params(topic: str, reliability: str | None = None,
                        depth: int | None = None) -> dict:
    """The parameters that set a subscription's QoS on resolved `topic` (for start-up
    overrides and YAML files)."""
    prefix = f'qos_overrides.{topic}.subscription.'
    params = {}
    if reliability is not None:
        params[prefix + 'reliability'] = reliability
    if depth is not None:
        params[prefix + 'depth'] = int(depth)
    return params


def config_dir() -> Path:
    """config/ of an ament install (share/vas_ros/config) or of the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory('vas_ros')) / 'config'
        if installed.is_dir():
            return installed
    except Exception:  # no ament index here: a source or pip install
        pass
    return Path(__file__).resolve().parents[2] / 'config'


def large_frames_profile() -> Path:
    return config_dir() / LARGE_FRAMES_PROFILE


def use_large_frame_transport(env: dict | None = None) -> bool:
    """Let this process's Fast DDS send camera-sized frames through shared memory.

    Fast DDS's default 512 KB shared-memory segment is smaller than a 640x480 rgb8 frame,
    so such frames go as fragmented UDP, and best-effort subscribers lose most of them
    (measured: docs/ros.md). The segment that matters is the *publisher's*, so frame
    publishers call this before `rclpy.init`. Does nothing if a profile is already chosen
    or another RMW is in use. Returns whether it set the profile.
    """
    env = os.environ if env is None else env
    rmw = env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if rmw != 'rmw_fastrtps_cpp' or env.get('FASTRTPS_DEFAULT_PROFILES_FILE') \
            or env.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return False
    profile = large_frames_profile()
    if not profile.is_file():
        return False
    env['FASTRTPS_DEFAULT_PROFILES_FILE'] = str(profile)
    return True


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

    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def stop_executor(executor, nodes) -> None:
    """Once `executor` no longer spins: let the callbacks it already handed to its threads
    finish, shut it down, then destroy `nodes`.

    rclpy's `Executor.shutdown` destroys its guard condition at once, without waiting for
    handlers already queued on a MultiThreadedExecutor's pool; each of them then fails with
    "cannot use Destroyable", printed at exit as "exception was never retrieved". Draining
    the pool first closes that window.
    """
    pool = getattr(executor, '_executor', None)  # MultiThreadedExecutor's thread pool
    if pool is not None:
        pool.shutdown(wait=True)
    executor.shutdown()
    for node in nodes:
        node.destroy_node()


def spin_nodes(nodes, threads: int = 4, multi_threaded: bool | None = None) -> int:
    """Spin nodes until Ctrl-C or shutdown; return the exit code.

    A node executable spins single-threaded by default: its heavy work already runs on
    its own threads, and rclpy's MultiThreadedExecutor cost 2-5x more CPU per 640x480
    frame here (docs/ros.md). `VAS_ROS_EXECUTOR=multi` (or `multi_threaded=True`) picks it.
    """
    import rclpy
    from rclpy.executors import (
        ExternalShutdownException,
        MultiThreadedExecutor,
        SingleThreadedExecutor,
    )

    if multi_threaded is None:
        multi_threaded = os.environ.get('VAS_ROS_EXECUTOR', 'single') == 'multi'
    executor = (MultiThreadedExecutor(num_threads=threads) if multi_threaded
                else SingleThreadedExecutor())
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop_executor(executor, nodes)
        rclpy.try_shutdown()
    return 0


def descriptor(text: str, bounds: tuple | None = None, read_only: bool = False):
    """A ParameterDescriptor with the bounds `ros2 param describe` and rqt show and rclpy
    enforces on every set (a float range for float bounds, else an integer range)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    described = ParameterDescriptor(description=text, read_only=read_only)
    if bounds is not None:
        low, high = bounds
        if isinstance(low, float):
            described.floating_point_range = [FloatingPointRange(from_value=low,
                                                                 to_value=high)]
        else:
            described.integer_range = [IntegerRange(from_value=low, to_value=high)]
    return described


def declare_checked(node, parameters: dict) -> None:
    """Declare {name: (default, ParameterDescriptor)}; a start-up override of the wrong
    type or outside its range is a VasError naming the parameter, not an rclpy traceback."""
    from rclpy.exceptions import (
        InvalidParameterTypeException,
        InvalidParameterValueException,
        ParameterUninitializedException,
    )

    from vas_ros.errors import VasError

    for name, (default, descriptor) in parameters.items():
        try:
            node.declare_parameter(name, default, descriptor)
        except InvalidParameterValueException as exc:
            raise VasError(f'{node.get_name()}: parameter {name}: {exc}') from None
        except (InvalidParameterTypeException, ParameterUninitializedException):
            raise VasError(f'{node.get_name()}: parameter {name} must be of type '
                           f'{type(default).__name__} like its default {default!r}') from None


def run_single(node_factory, argv=None, multi_threaded: bool | None = None) -> int:
    """`main()` of a node executable: init with ROS args, build, spin, clean up."""
    import rclpy

    # rclpy's default signal handlers turn SIGINT and SIGTERM into a clean shutdown.
    from vas_ros.errors import VasError

    try:
        rclpy.init(args=sys.argv if argv is None else argv)
    except Exception as exc:  # rcl's RCLError for an unparsable --ros-args rule
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        reason = reason.split(', at ')[0].removeprefix('failed to initialize rcl: ')
        print(f'error: bad ROS arguments: {reason}', file=sys.stderr)
        return 2
    try:
        try:
            node = node_factory()
        except VasError as exc:
            print(f'error: {exc}', file=sys.stderr)
            rclpy.try_shutdown()
            return 2
        except Exception:
            if not rclpy.ok():  # a signal shut the context down while the node was starting
                rclpy.try_shutdown()
                return 0
            raise
        return spin_nodes([node], multi_threaded=multi_threaded)
    except KeyboardInterrupt:
        # Ctrl-C while the node was starting (loading its model). rclpy's handler shuts the
        # context down at once, so the call in flight fails first; Python's own SIGINT
        # handler raises this a moment later, inside whichever handler runs then.
        rclpy.try_shutdown()
        return 0
