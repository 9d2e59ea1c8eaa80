"""On-disk cache of decoded, resized clips so epochs after the first skip decoding.

An entry is one .npy file (uint8 [N, size, size, 3]: every frame of the source, or of its
time span, resized) named by a hash of the source's absolute path, modification time,
byte size, the time span/topic and the frame size. Editing or replacing the source
changes its mtime/size and so its key; stale entries are simply never read again.
Writes go to a temporary file first and are renamed into place, so parallel data-loader
workers never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def source_stamp(path) -> dict:
    """Identity of a source file or directory (bag): path, newest mtime and total size."""
    path = Path(path).resolve()
    # a bag directory's labels.csv is not part of its recording: editing labels keeps the
    # decoded spans (each cache key also holds the span itself)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob('*') if p.is_file() and p.suffix.lower() != '.csv')
    stats = [p.stat() for p in files]
    return {'path': str(path), 'mtime_ns': max((s.st_mtime_ns for s in stats), default=0),
            'bytes': sum(s.st_size for s in stats)}


class ClipCache:
    """Decoded-clip store under `root`; `get(key_fields, load)` returns the cached array."""

    def __init__(self, root):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def key(self, fields: dict) -> str:
        text = json.dumps({'v': CACHE_VERSION, **fields}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()

    def path_for(self, fields: dict) -> Path:
        key = self.key(fields)
        return self.root / key[:2] / f'{key}.npy'

    def get(self, fields: dict, load) -> np.ndarray:
        """The array cached under `fields`, or `load()`'s result, stored for next time."""
        path = self.path_for(fields)
        if path.is_file():
            try:
                array = np.load(path, allow_pickle=False)
                self.hits += 1
                return array
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a damaged entry is rebuilt, not trusted
        array = load()
        self.misses += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'{path.stem}.{os.getpid()}.tmp.npy')
        np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)
        tmp.replace(path)
        return array
