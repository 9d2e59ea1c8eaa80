"""What the two synthetic renderers share: the motion classes and the folder marker.

`vas_ros.data.synth` renders training data and `vas_ros.data.holdout` renders
out-of-distribution test data for the same classes. A folder either writes holds
`synth.json`, which names the generator, so that a training command can tell the two
apart and refuse the holdout set.
"""

from __future__ import annotations

import json
from pathlib import Path

from vas_ros.models.spec import BACKGROUND_CLASS

CLASSES = ('grow', 'move_down', 'move_left', 'move_right', 'move_up', 'rotate_ccw',
           'rotate_cw', 'shrink')
MARKER = 'synth.json'  # at a written data set's root: which renderer, seed and classes


def dataset_classes(with_none: bool = False) -> tuple[str, ...]:
    """The class list of a written data set, sorted as its folders are."""
    return tuple(sorted((*CLASSES, BACKGROUND_CLASS))) if with_none else CLASSES


def written_by(root) -> str | None:
    """The generator named in ROOT/synth.json (None without a readable one)."""
    try:
        info = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info.get('generator') if isinstance(info, dict) else None
