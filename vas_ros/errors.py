"""Errors that carry a message meant for the user.

Anything raised as a `VasError` is printed by the CLI as one line (no traceback) and
turned into exit code 2; the ROS nodes log it once and keep running.
"""


class VasError(Exception):
    """Base class: a problem with the user's input, explained in the message."""


class GenomeError(VasError, ValueError):
    """A genome that does not validate. `field` is the dotted path of the offending field."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f'invalid genome field {field!r}: {problem}')


class DataError(VasError):
    """A data set, video, bag or label file that cannot be used as asked."""


class CheckpointError(VasError):
    """A checkpoint that is missing, truncated, or carries metadata we cannot run."""


class StoreError(VasError):
    """A search store that cannot be opened, written, or belongs to another search."""
