"""`vas-ros run`: the launch files' nodes in one process, for machines without `ros2 launch`."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'run', help='start the activity recogniser and search node (and a video source)',
        description='Start the nodes that launch/activity.launch.py starts (with --demo: '
                    'demo.launch.py, which adds video_source) in one process on a '
                    'multi-threaded executor, with parameters from the same YAML file. '
                    'DDS settings (ROS_DOMAIN_ID, discovery range) come from the environment.')
    parser.add_argument('--params', metavar='FILE',
                        help='parameter YAML (default: config/activity.yaml, or '
                             'config/demo.yaml with --demo)')
    parser.add_argument('--demo', action='store_true',
                        help='also publish synthetic clips with video_source')
    parser.add_argument('--image-topic', default='', metavar='T',
                        help='camera topic to use instead of "image" (a remap)')
    parser.add_argument('--model', default='', help='override activity_recognizer.model')
    parser.add_argument('--device', default='', help='override activity_recognizer.device')
    parser.add_argument('--no-search', action='store_true', help='leave out the search node')
    parser.add_argument('--duration', type=float, default=None, metavar='S',
                        help='stop after S seconds (default: run until Ctrl-C)')
    parser.set_defaults(func=run)


def run(args) -> int:
    from vas_ros.commands._checks import finite_positive

    finite_positive(args.duration, '--duration')  # before rclpy starts
    from vas_ros.nodes.composition import run_composition

    return run_composition(args.params, demo=args.demo, image_topic=args.image_topic,
                           overrides={'model': args.model, 'device': args.device},
                           search=not args.no_search, duration=args.duration or 0.0)
