"""The launch files' composition in one process: what `vas-ros run` starts.

`ros2 launch vas_ros activity.launch.py` (or `demo.launch.py`) starts the recogniser, the
search node (and the video source) as separate processes with parameters from
`config/*.yaml`. Where `launch` is not installed, `run_composition` starts the same nodes
with the same YAML in one process on a MultiThreadedExecutor.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from vas_ros.errors import VasError
from vas_ros.nodes.common import config_dir


def default_params_file(demo: bool) -> Path:
    return config_dir() / ('demo.yaml' if demo else 'activity.yaml')


def node_classes() -> dict:
    from vas_ros.nodes.activity_node import NODE_NAME as ACTIVITY
    from vas_ros.nodes.activity_node import PARAMETERS as ACTIVITY_PARAMS
    from vas_ros.nodes.search_node import NODE_NAME as SEARCH
    from vas_ros.nodes.search_node import PARAMETERS as SEARCH_PARAMS
    from vas_ros.nodes.video_source import NODE_NAME as SOURCE
    from vas_ros.nodes.video_source import PARAMETERS as SOURCE_PARAMS

    return {ACTIVITY: ACTIVITY_PARAMS, SEARCH: SEARCH_PARAMS, SOURCE: SOURCE_PARAMS}


def load_params(path) -> dict[str, dict]:
    """A ROS parameter YAML -> {node_name: {param: value}}, checked against our nodes.

    Accepts `<node_name>:`, `/<node_name>:` and `/**/<node_name>:` (any namespace) keys and
    the `/**:` wildcard (applied to every node, node-specific values winning), each holding
    `ros__parameters`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise VasError(f'{path}: parameter file does not exist')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VasError(f'{path}: not valid YAML ({exc})') from None
    if not isinstance(data, dict):
        raise VasError(f'{path}: expected a mapping of node names')
    known = node_classes()
    common: dict = {}
    result: dict[str, dict] = {}
    for key, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get('ros__parameters'), dict):
            raise VasError(f'{path}: {key!r} needs a "ros__parameters" mapping')
        params = body['ros__parameters']
        # `/**/name` matches the node in any namespace (launch's namespace:=robot1).
        name = str(key).removeprefix('/**/').strip('/')
        if key == '/**':
            common.update(params)
            continue
        if name not in known:
            raise VasError(f'{path}: unknown node {key!r}; known: {sorted(known)}')
        result[name] = _checked(path, name, params, known[name])
    for name, declared in known.items():
        shared = {k: v for k, v in common.items() if k in declared}
        if shared:
            result[name] = {**_checked(path, name, shared, declared), **result.get(name, {})}
    return result


def _flat_qos(prefix: str, value, out: dict) -> None:
    """rclpy's QoS override parameters, nested in YAML, as the dotted names rcl gives."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat_qos(f'{prefix}.{key}', inner, out)
    else:
        out[prefix] = value


def _checked(path: Path, node: str, params: dict, declared: dict) -> dict:
    out = {}
    for key, value in params.items():
        if key == 'qos_overrides' or str(key).startswith('qos_overrides.'):
            _flat_qos(str(key), value, out)  # rclpy checks them when it makes the entity
            continue
        if key not in declared:
            raise VasError(f'{path}: {node} has no parameter {key!r}; it has '
                           f'{", ".join(sorted(declared))}')
        default = declared[key][0]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value,
                                                                                    bool):
            value = float(value)
        if type(value) is not type(default):
            raise VasError(f'{path}: {node}.{key} should be {type(default).__name__}, got '
                           f'{value!r}')
        out[key] = value
    return out


def build_nodes(params: dict[str, dict], demo: bool = False, image_topic: str = '',
                search: bool = True, context=None) -> list:
    """Instantiate the composition's nodes with `params` as parameter overrides."""
    from rclpy.parameter import Parameter

    from vas_ros.nodes.activity_node import NODE_NAME as ACTIVITY
    from vas_ros.nodes.activity_node import ActivityNode
    from vas_ros.nodes.search_node import NODE_NAME as SEARCH
    from vas_ros.nodes.search_node import SearchNode
    from vas_ros.nodes.video_source import NODE_NAME as SOURCE
    from vas_ros.nodes.video_source import VideoSource

    def kwargs(name: str) -> dict:
        out = {'parameter_overrides': [Parameter(k, value=v)
                                       for k, v in params.get(name, {}).items()]}
        if image_topic:
            out['cli_args'] = ['--ros-args', '-r', f'image:={image_topic}',
                               '-r', f'image/compressed:={image_topic}/compressed']
        if context is not None:
            out['context'] = context
        return out

    nodes = [ActivityNode(**kwargs(ACTIVITY))]
    if search:
        nodes.append(SearchNode(**kwargs(SEARCH)))
    if demo:
        nodes.append(VideoSource(**kwargs(SOURCE)))
    return nodes


def run_composition(params_file=None, demo: bool = False, image_topic: str = '',
                    overrides: dict | None = None, search: bool = True,
                    duration: float = 0.0, threads: int = 4) -> int:
    """Start the nodes in this process and spin until Ctrl-C (or `duration` seconds)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from vas_ros.nodes.activity_node import NODE_NAME as ACTIVITY
    from vas_ros.nodes.common import stop_executor

    path = Path(params_file) if params_file else default_params_file(demo)
    params = load_params(path)
    if overrides:
        params.setdefault(ACTIVITY, {}).update({k: v for k, v in overrides.items() if v})
    rclpy.init()
    nodes, executor = [], None
    try:
        nodes = build_nodes(params, demo=demo, image_topic=image_topic, search=search)
        executor = MultiThreadedExecutor(num_threads=threads)
        for node in nodes:
            executor.add_node(node)
        nodes[0].get_logger().info(f'vas-ros run: {", ".join(n.get_name() for n in nodes)} '
                                   f'with {path}')
        deadline = time.monotonic() + duration if duration > 0 else None
        try:
            while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
                executor.spin_once(timeout_sec=0.2)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
    finally:
        if executor is not None:
            stop_executor(executor, nodes)
        else:
            for node in nodes:
                node.destroy_node()
        rclpy.try_shutdown()
    return 0
