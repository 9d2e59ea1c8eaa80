"""`python -m vas_ros` is the `vas-ros` command."""

import sys

from vas_ros.cli import main

sys.exit(main())
