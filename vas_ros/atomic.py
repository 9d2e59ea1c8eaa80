"""Write a file so that readers see the old version or the whole new one, never half.

Checkpoints, training state, run files and plots are read by other processes (a node
deploying a model, a resumed run), so each is written to a temp file beside the target
and renamed over it. The file ends up mode 0644: run files are meant to be shared.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, suffix: str = '.tmp') -> Iterator[str]:
    """Yield a temp path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, data, sort_keys: bool = False) -> None:
    """`data` as indented JSON at `path`, atomically (the one JSON writer for run files)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=sort_keys))
