"""Activity recognition from a camera topic, plus the on-robot architecture search service.

    ros2 launch vas_ros activity.launch.py image_topic:=/camera/image_raw
    ros2 launch vas_ros activity.launch.py model:=/path/to/model.safetensors device:=cuda
    ros2 launch vas_ros activity.launch.py namespace:=robot1 use_search:=false

Parameters come from `params_file` (default: the package's config/activity.yaml); the
`model` and `device` arguments, when given, override it. With `namespace`, every node,
topic, service and action lives under it (several robots in one graph), and the search
deploys to the recogniser of its own namespace. Without `ros2 launch`,
`vas-ros run` starts the same nodes with the same YAML in one process.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vas_ros'


def arguments(default_params: str) -> list:
    """Launch arguments; demo.launch.py passes the same ones through."""
    return [
        DeclareLaunchArgument(
            'params_file', description='parameter YAML for all nodes',
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), 'config',
                                                default_params])),
        DeclareLaunchArgument('model', default_value='',
                              description='checkpoint path or shipped model name '
                                          '(empty: as in params_file)'),
        DeclareLaunchArgument('device', default_value='',
                              description='auto, cpu, cuda or cuda:N (empty: as in params_file)'),
        DeclareLaunchArgument('image_topic', default_value='image',
                              description='camera topic (sensor_msgs/Image); its /compressed '
                                          'sibling with image_transport: compressed in the YAML; '
                                          'relative names resolve in the namespace'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of all nodes, e.g. robot1 (empty: none)'),
        DeclareLaunchArgument('use_search', default_value='true',
                              description='also start architecture_search (true or false)'),
    ]


def _flag(context, name: str) -> bool:
    value = LaunchConfiguration(name).perform(context).strip().lower()
    if value not in ('true', 'false', '1', '0', 'yes', 'no'):
        raise ValueError(f'launch argument {name}:={value!r}: expected true or false')
    return value in ('true', '1', 'yes')


def recogniser_and_search(context) -> list:
    params_file = LaunchConfiguration('params_file').perform(context)
    image_topic = LaunchConfiguration('image_topic').perform(context)
    overrides = {name: LaunchConfiguration(name).perform(context)
                 for name in ('model', 'device')}
    overrides = {name: value for name, value in overrides.items() if value}
    namespace = LaunchConfiguration('namespace').perform(context).strip()
    remaps = [('image', image_topic), ('image/compressed', image_topic + '/compressed')]
    nodes = [Node(package=PACKAGE, executable='activity_node', name='activity_recognizer',
                  namespace=namespace, parameters=[params_file, overrides],
                  remappings=remaps, output='screen', emulate_tty=True)]
    if _flag(context, 'use_search'):
        nodes.append(Node(package=PACKAGE, executable='search_node',
                          name='architecture_search', namespace=namespace,
                          parameters=[params_file], output='screen', emulate_tty=True))
    return nodes


def generate_launch_description():
    return LaunchDescription(arguments('activity.yaml')
                             + [OpaqueFunction(function=recogniser_and_search)])
