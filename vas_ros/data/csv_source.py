"""Label CSV files: clip lists for any layout, and labelled time spans for a rosbag2 bag.

Two forms, told apart by the header row:

* clip list: `path,label,split[,start_s,end_s][,topic]`. `path` is a video file or a
  rosbag2 bag (directory, .db3 or .mcap); relative paths are resolved against the CSV's
  folder. start_s/end_s (optional, may be empty) cut a time span; `topic` names the image
  topic of a bag (optional when the bag has only one).
* span list for one bag: `label,start_s,end_s[,split][,topic]`; split defaults to
  `train`. Times are seconds from the bag's first message.

A row that cannot be used (missing field, unparsable or reversed times, missing file)
comes back as a skip reason naming the CSV line, not as an exception; a file without the
needed header raises DataError.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from vas_ros.data.records import ClipRecord
from vas_ros.data.rosbag_source import is_rosbag
from vas_ros.data.video_io import VIDEO_EXTENSIONS
from vas_ros.errors import DataError

CLIP_COLUMNS = ('path', 'label', 'split')
SPAN_COLUMNS = ('label', 'start_s', 'end_s')


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    if not path.is_file():
        raise DataError(f'{path}: label CSV not found')
    try:
        with path.open(newline='', encoding='utf-8-sig') as handle:
            lines = [line for line in handle if line.strip() and not line.startswith('#')]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f'{path}: cannot read label CSV: {exc}') from None
    if not lines:
        raise DataError(f'{path}: label CSV is empty')
    reader = csv.DictReader(lines, skipinitialspace=True)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = [(number + 2, {k: (v or '').strip() for k, v in row.items() if k is not None})
            for number, row in enumerate(reader)]
    return header, rows


def csv_kind(path) -> str:
    """'clips' or 'spans' by the CSV's header, or DataError naming the columns needed."""
    path = Path(path)
    header, _ = _read_rows(path)
    if all(c in header for c in CLIP_COLUMNS):
        return 'clips'
    if all(c in header for c in SPAN_COLUMNS) and 'path' not in header:
        return 'spans'
    raise DataError(f'{path}: header {header} is neither a clip list '
                    f'({",".join(CLIP_COLUMNS)}[,start_s,end_s][,topic]) nor a bag span list '
                    f'({",".join(SPAN_COLUMNS)}[,split][,topic])')


def _times(row: dict, required: bool) -> tuple[float | None, float | None]:
    values = []
    for key in ('start_s', 'end_s'):
        text = row.get(key, '')
        if not text:
            if required:
                raise ValueError(f'{key} is empty')
            values.append(None)
            continue
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f'{key} {text!r} is not a number') from None
        if not math.isfinite(value):
            raise ValueError(f'{key} {text!r} is not a finite number of seconds')
        values.append(value)
    start, end = values
    if start is not None and start < 0:
        raise ValueError(f'start_s {start} is negative')
    if start is not None and end is not None and end <= start:
        raise ValueError(f'end_s {end} is not after start_s {start}')
    return start, end


def read_clip_csv(path) -> tuple[list[ClipRecord], list[tuple[str | None, str]]]:
    """Records of a clip-list CSV, and (split or None, reason) for every unusable row."""
    path = Path(path)
    header, rows = _read_rows(path)
    if csv_kind(path) != 'clips':
        raise DataError(f'{path}: is a bag span list; open it with its bag (RosbagSource, '
                        f'or as labels.csv inside the bag directory)')
    records, bad = [], []
    for line, row in rows:
        split = row.get('split') or None
        where = f'{path} line {line}'
        try:
            missing = [c for c in CLIP_COLUMNS if not row.get(c)]
            if missing:
                raise ValueError(f'empty {", ".join(missing)}')
            start, end = _times(row, required=False)
            source = Path(row['path'])
            if not source.is_absolute():
                source = path.parent / source
            if not source.exists():
                raise ValueError(f'{source} does not exist')
            if is_rosbag(source):
                kind = 'bag'
            elif source.suffix.lower() in VIDEO_EXTENSIONS:
                kind = 'video'
            else:
                raise ValueError(f'{source} is neither a video ({", ".join(VIDEO_EXTENSIONS)}) '
                                 f'nor a rosbag2')
        except ValueError as exc:
            bad.append((split, f'{where}: {exc}'))
            continue
        records.append(ClipRecord(source, row['label'], row['split'], kind, start, end,
                                  row.get('topic') or None, where))
    return records, bad


def read_span_csv(path, bag, topic: str | None = None
                  ) -> tuple[list[ClipRecord], list[tuple[str | None, str]]]:
    """Records for the labelled spans of one bag, and (split or None, reason) per bad row."""
    path, bag = Path(path), Path(bag)
    header, rows = _read_rows(path)
    if csv_kind(path) != 'spans':
        raise DataError(f'{path}: a bag needs a span list with columns '
                        f'{",".join(SPAN_COLUMNS)}[,split][,topic], got {header}')
    records, bad = [], []
    for line, row in rows:
        split = row.get('split') or 'train'
        where = f'{path} line {line}'
        try:
            if not row.get('label'):
                raise ValueError('empty label')
            start, end = _times(row, required=True)
        except ValueError as exc:
            bad.append((split, f'{where}: {exc}'))
            continue
        records.append(ClipRecord(bag, row['label'], split, 'bag', start, end,
                                  row.get('topic') or topic, where))
    return records, bad
