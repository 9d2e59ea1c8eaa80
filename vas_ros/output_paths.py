"""Output paths checked before any work starts.

A command that trains for an hour and then finds it cannot write its folder, or that
writes its result over its own input, loses work. Each command declares its outputs
(`parser.set_defaults(outputs=...)`) and `check_outputs` refuses, with one line, any output
that is empty, is one of the command's inputs, is the wrong kind of thing (a file where a
folder goes, or the reverse), lies under a file, or cannot be written. Nothing is created:
the check writes only a temporary probe file, which it removes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vas_ros.errors import VasError

# Every command's folder for decoded-clip caches, when given, is an output folder.
COMMON = {'cache_dir': ('dir', ())}


def _nearest_existing(path: Path) -> Path:
    here = path
    while not here.exists():
        if here.parent == here:
            break
        here = here.parent
    return here


def _probe(folder: Path, flag: str, path: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder, prefix='.vas_ros_probe'):
            pass
    except OSError as exc:
        raise VasError(f'{flag} {path}: cannot write in {folder} '
                       f'({exc.strerror or exc})') from None


def check_output(path, flag: str, kind: str = 'file', inputs=()) -> Path:
    """`path` as a Path, if a `kind` ('file' or 'dir') can be written there and it is
    none of `inputs`; a VasError naming `flag` otherwise."""
    if path is None or str(path).strip() == '':
        raise VasError(f'{flag}: an empty path; name a {"folder" if kind == "dir" else "file"}')
    path = Path(path).expanduser()
    target = path.resolve()
    for given in inputs:
        if given is None or str(given) == '':
            continue
        source = Path(given).expanduser().resolve()
        if target == source:
            raise VasError(f'{flag} {path} is the input {given}: writing it would destroy '
                           f'what it is made from; choose another path')
    if kind == 'file' and path.is_dir():
        raise VasError(f'{flag} {path} is a folder; name a file inside it')
    if kind == 'dir' and path.exists() and not path.is_dir():
        raise VasError(f'{flag} {path} is a file, not a folder')
    anchor = _nearest_existing(path.parent if kind == 'file' else path)
    if not anchor.is_dir():
        raise VasError(f'{flag} {path}: {anchor} is a file, so nothing can be created '
                       f'under it')
    if kind == 'file' and path.exists() and not os.access(path, os.W_OK):
        raise VasError(f'{flag} {path}: the file is read-only')
    _probe(anchor, flag, path)
    return path


def check_outputs(args) -> None:
    """Check every output the parsed `args` declare. `args.outputs` maps an attribute to
    (kind, names of the input attributes it must differ from[, the name to show, for a
    positional argument]); `cache_dir` is always an output folder."""
    declared = {**COMMON, **(getattr(args, 'outputs', None) or {})}
    for attr, entry in declared.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        kind, input_attrs = entry[0], entry[1]
        flag = entry[2] if len(entry) > 2 else '--' + attr.replace('_', '-')
        inputs = []
        for name in input_attrs:
            given = getattr(args, name, None)
            inputs.extend(given if isinstance(given, (list, tuple)) else [given])
        check_output(value, flag, kind, inputs)
