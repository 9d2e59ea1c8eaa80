"""The demo: a synthetic (or recorded) video stream drives the activity recogniser.

    ros2 launch vas_ros demo.launch.py
    ros2 launch vas_ros demo.launch.py video:=/path/to/clip.mp4

Includes activity.launch.py (recogniser + search node) and adds `video_source`, all with
parameters from config/demo.yaml. Watch `ros2 topic echo /activity` beside
`ros2 topic echo /video_source/label`. `vas-ros run --demo` is the same composition in
one process.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'vas_ros'


def video_source(context) -> list:
    params_file = LaunchConfiguration('params_file').perform(context)
    image_topic = LaunchConfiguration('image_topic').perform(context)
    video = LaunchConfiguration('video').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context).strip()
    overrides = {'video': video} if video else {}
    return [Node(package=PACKAGE, executable='video_source', name='video_source',
                 namespace=namespace, parameters=[params_file, overrides],
                 remappings=[('image', image_topic)], output='screen', emulate_tty=True)]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    passed = ('params_file', 'model', 'device', 'image_topic', 'namespace', 'use_search')
    return LaunchDescription([
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config', 'demo.yaml']),
                              description='parameter YAML for all nodes'),
        DeclareLaunchArgument('model', default_value='',
                              description='checkpoint or shipped model (empty: as in the YAML)'),
        DeclareLaunchArgument('device', default_value='',
                              description='auto, cpu, cuda or cuda:N (empty: as in the YAML)'),
        DeclareLaunchArgument('image_topic', default_value='image',
                              description='topic the video is published on and read from'),
        DeclareLaunchArgument('video', default_value='',
                              description='video file to play (empty: synthetic clips)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of all nodes, e.g. robot1 (empty: none)'),
        DeclareLaunchArgument('use_search', default_value='true',
                              description='also start architecture_search (true or false)'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([share, 'launch', 'activity.launch.py'])),
            launch_arguments={name: LaunchConfiguration(name) for name in passed}.items()),
        OpaqueFunction(function=video_source),
    ])
