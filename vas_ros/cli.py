"""The `vas-ros` command.

Each module in `vas_ros.commands` adds its own sub-commands through `register(subparsers)`,
so that commands live next to nothing but their argument parsing. Command modules keep
heavy imports (torch, rclpy) inside their handlers so that `vas-ros --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from vas_ros import __version__
from vas_ros.errors import VasError
from vas_ros.output_paths import check_outputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vas-ros',
        description='Evolved video architectures (TVN, EvaNet, AssembleNet) for ROS 2 robots.',
    )
    parser.add_argument('--version', action='version', version=f'vas-ros {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    import vas_ros.commands as commands_pkg

    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith('_'):
            continue
        module = importlib.import_module(f'vas_ros.commands.{info.name}')
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    try:
        check_outputs(args)
        return int(args.func(args) or 0)
    except VasError as exc:
        print(f'vas-ros {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'vas-ros {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
