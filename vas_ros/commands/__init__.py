"""Sub-commands of `vas-ros`; each module defines `register(subparsers)`."""
