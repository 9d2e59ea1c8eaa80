"""Labelled clip data sets for training and evaluation, from folders, CSV files or bags.

`open_dataset(source, split, spec)` accepts:

* a folder `ROOT/<split>/<class>/<clip>.{mp4,avi,mkv,webm}`; the class list is the sorted
  class folder names of `train` (of all splits together when there is no `train`);
* a clip-list CSV `path,label,split[,start_s,end_s][,topic]` (see csv_source);
* a rosbag2 bag (directory with metadata.yaml holding `labels.csv`, or a .db3/.mcap file
  with `<name>.csv` beside it), or a `RosbagSource(bag, labels, topic)`.

Clips that cannot be used while the rest can (unreadable or empty video, label not in the
class list, bad CSV row, empty bag span) are skipped: logged one by one, summarised in one
DataWarning, counted in `ClipDataset.skipped` and listed in `skip_reasons`. A data set with
nothing usable raises DataError.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from vas_ros.data.augment import (
    Augmentation,
    augment_clip,
    draw_flips,
    flip_axes,
    flipped_label,
    speed_indices,
)
from vas_ros.data.cache import ClipCache, source_stamp
from vas_ros.data.csv_source import csv_kind, read_clip_csv, read_span_csv
from vas_ros.data.records import ClipRecord
from vas_ros.data.rosbag_source import RosbagSource, bag_span_counts, is_rosbag, read_bag_frames
from vas_ros.data.sampling import clip_indices
from vas_ros.data.transforms import clip_to_inputs, resize_frames
from vas_ros.data.video_io import VIDEO_EXTENSIONS, probe_video, read_video
from vas_ros.errors import DataError

log = logging.getLogger('vas_ros.data')

try:  # a torch Dataset when torch is there (it always is for training)
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover
    _Base = object


class DataWarning(UserWarning):
    """Some clips of a data set were skipped; the rest is usable."""


def _bag_labels(bag: Path) -> Path:
    return bag / 'labels.csv' if bag.is_dir() else bag.with_suffix('.csv')


def _resolve(source) -> tuple[str, object]:
    """('folder'|'csv'|'bag', source) after checking that the source exists."""
    if isinstance(source, RosbagSource):
        return 'bag', source
    path = Path(source)
    if not path.exists():
        raise DataError(f'{path}: data source not found')
    if is_rosbag(path):
        labels = _bag_labels(path)
        if not labels.is_file():
            raise DataError(f'{path}: a rosbag2 needs labelled spans in {labels} '
                            f'(label,start_s,end_s[,split][,topic])')
        return 'bag', RosbagSource(path, labels)
    if path.is_file() and path.suffix.lower() == '.csv':
        return 'csv', path
    if path.is_dir():
        return 'folder', path
    raise DataError(f'{path}: not a data set folder, a .csv label file or a rosbag2 bag')


def _split_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.'))


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir()
                  if p.is_dir() and not p.name.startswith('.'))


def _folder_records(root: Path, split: str) -> list[ClipRecord]:
    split_dir = root / split
    if not split_dir.is_dir():
        found = [p.name for p in _split_dirs(root)]
        raise DataError(f'{root}: no {split!r} split folder (found: {found or "nothing"})')
    records = []
    for label in _class_dirs(split_dir):
        for path in sorted((split_dir / label).iterdir()):
            if path.is_file() and not path.name.startswith('.') and \
                    path.suffix.lower() in VIDEO_EXTENSIONS:
                records.append(ClipRecord(path, label, split, 'video', origin=str(path)))
    return records


def _all_records(kind: str, source) -> tuple[list[ClipRecord], list[tuple[str | None, str]]]:
    if kind == 'csv':
        if csv_kind(source) == 'spans':
            raise DataError(f'{source}: is a bag span list; give the bag itself (with this '
                            f'file as its labels.csv) or a RosbagSource')
        return read_clip_csv(source)
    return read_span_csv(source.labels, source.bag, source.topic)


def cache_fields(record: ClipRecord, size: int) -> dict:
    """What identifies the decoded frames of a record: source identity, span, frame size."""
    return {'source': source_stamp(record.path), 'kind': record.kind,
            'start_s': record.start_s, 'end_s': record.end_s, 'topic': record.topic,
            'size': int(size)}


def list_classes(source) -> list[str]:
    """Class names in model output order: sorted, taken from the train split."""
    kind, source = _resolve(source)
    if kind == 'folder':
        splits = _split_dirs(source)
        if not splits:
            raise DataError(f'{source}: empty data set folder (expected '
                            f'<split>/<class>/<clip>.mp4)')
        train = [p for p in splits if p.name == 'train']
        names = sorted({c for d in (train or splits) for c in _class_dirs(d)})
    else:
        records, bad = _all_records(kind, source)
        train = [r.label for r in records if r.split == 'train']
        names = sorted(set(train or [r.label for r in records]))
        if not names and bad:
            raise DataError(f'{source}: no usable rows to take classes from ({len(bad)} bad; '
                            f'first: {bad[0][1]})')
    if not names:
        raise DataError(f'{source}: no classes found')
    return names


class ClipDataset(_Base):
    """Labelled clips; item i = ({stream: float32 tensor [C, T, H, W]}, class index).

    Decoded frames (resized to spec.size) are cached under `cache_dir` when given. With
    train=True each access draws a random temporal offset and augmentation from
    (seed, epoch, index, access count within the epoch); call `set_epoch` each epoch.
    Evaluation clips are centred and deterministic.
    """

    def __init__(self, records: list[ClipRecord], classes: list[str], spec, *,
                 train: bool = False, cache_dir=None, seed: int = 0,
                 skip_reasons: list[str] | None = None, name: str = '',
                 augment: Augmentation | None = None):
        self.records = list(records)
        self.classes = list(classes)
        self.spec = spec
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        self.name = name
        self.skip_reasons = list(skip_reasons or [])
        self.labels = [self.classes.index(r.label) for r in self.records]
        self.cache = ClipCache(cache_dir) if cache_dir else None
        self._draws: Counter = Counter()
        # Training only; flips only where the class list says what they do (augment.py).
        self.augment = augment if train else None
        self._flips = flip_axes(self.classes) if augment is not None and augment.flip else ()

    @property
    def skipped(self) -> int:
        return len(self.skip_reasons)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch`: its draws depend on (seed, epoch, index, access within the
        epoch) only, so a run resumed at this epoch in a new process draws the same."""
        self.epoch = int(epoch)
        self._draws.clear()

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def _cache_fields(self, record: ClipRecord) -> dict:
        return cache_fields(record, self.spec.size)

    def _decode(self, record: ClipRecord) -> np.ndarray:
        if record.kind == 'bag':
            frames, _ = read_bag_frames(record.path, record.topic, record.start_s,
                                        record.end_s, size=self.spec.size)
        else:
            frames, _ = read_video(record.path, record.start_s, record.end_s,
                                   size=self.spec.size)
        return resize_frames(frames, self.spec.size)

    def is_cached(self, index: int) -> bool:
        return bool(self.cache) and \
            self.cache.path_for(self._cache_fields(self.records[index])).is_file()

    def frames(self, index: int) -> np.ndarray:
        """Every decoded frame of clip `index`, uint8 [N, size, size, 3] (cached)."""
        record = self.records[index]
        if self.cache is None:
            return self._decode(record)
        return self.cache.get(self._cache_fields(record), lambda: self._decode(record))

    def _rng(self, index: int) -> np.random.Generator:
        # Not the DataLoader worker's seed: the draws must not depend on how many workers
        # load the data, nor on which one loads this clip.
        self._draws[index] += 1
        return np.random.default_rng([self.seed, self.epoch, index, self._draws[index]])

    def clip(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The spec.frames frames of clip `index` (random offset in training)."""
        frames = self.frames(index)
        picks = clip_indices(len(frames), self.spec.frames, self.spec.frame_stride,
                             train=self.train, rng=rng)
        return frames[picks]

    def augmented(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Clip `index` at a random speed, flipped and recoloured, with its label after
        the flips (training with an Augmentation policy)."""
        policy = self.augment
        frames = self.frames(index)
        rate = float(np.exp(rng.uniform(-1.0, 1.0) * np.log(policy.speed)))
        picks = speed_indices(len(frames), self.spec.frames, self.spec.frame_stride, rate, rng)
        axes = draw_flips(rng, self._flips)
        label = self.classes.index(flipped_label(self.records[index].label, axes))
        return augment_clip(frames[picks], axes, rng, policy), label

    def __getitem__(self, index: int):
        rng = self._rng(index) if self.train else None
        if self.augment is not None:
            clip, label = self.augmented(index, rng)
        else:
            clip, label = self.clip(index, rng), self.labels[index]
        return clip_to_inputs(clip, self.spec, train=self.train, rng=rng), label


def _check_videos(records: list[ClipRecord], cache: ClipCache | None, spec,
                  reasons: list[str]) -> list[ClipRecord]:
    kept = []
    for record in records:
        if cache is not None:
            if cache.path_for(cache_fields(record, spec.size)).is_file():
                kept.append(record)  # decoded fine before, and unchanged since
                continue
        try:
            info = probe_video(record.path)
        except DataError as exc:
            reasons.append(f'{record.origin}: {exc}' if record.origin else str(exc))
            continue
        duration = info.get('duration_s')
        if record.start_s is not None and duration and record.start_s >= duration:
            reasons.append(f'{record.origin or record.path}: span [{record.start_s}, '
                           f'{record.end_s}) s starts after the end of {record.path} '
                           f'({duration:.2f} s long)')
            continue
        kept.append(record)
    return kept


def _check_bag_spans(records: list[ClipRecord], reasons: list[str]) -> list[ClipRecord]:
    kept = []
    by_source: dict = {}
    for record in records:
        by_source.setdefault((record.path, record.topic), []).append(record)
    for (bag, topic), group in by_source.items():
        # A missing bag or topic is the whole source failing: raise, don't skip.
        topic, duration, counts = bag_span_counts(bag, topic,
                                                  [(r.start_s, r.end_s) for r in group])
        for record, count in zip(group, counts):
            if count == 0:
                reasons.append(f'{record.origin}: no images on {topic} in '
                               f'[{record.start_s}, {record.end_s}) s of {bag} '
                               f'(bag lasts {duration:.2f} s)')
            else:
                kept.append(ClipRecord(record.path, record.label, record.split, 'bag',
                                       record.start_s, record.end_s, topic, record.origin))
    return kept


def open_dataset(source, split: str, spec, *, train: bool = False, cache_dir=None,
                 seed: int = 0, classes=None, augment: Augmentation | None = None) -> ClipDataset:
    """The `split` clips of `source` as a ClipDataset (see module docstring for sources).

    `classes` fixes the class list (e.g. a checkpoint's); by default `list_classes`.
    `augment` (training only) is the policy of `vas_ros.data.augment`.
    """
    kind, resolved = _resolve(source)
    classes = list(classes) if classes is not None else list_classes(resolved)
    reasons: list[str] = []
    if kind == 'folder':
        records = _folder_records(resolved, split)
        where = f'{resolved}/{split}'
    else:
        all_records, bad = _all_records(kind, resolved)
        records = [r for r in all_records if r.split == split]
        reasons += [reason for row_split, reason in bad if row_split in (None, split)]
        where = f'{resolved.labels if kind == "bag" else resolved} split {split!r}'
        if not records and not reasons:
            splits = sorted({r.split for r in all_records})
            raise DataError(f'{where}: no clips (splits present: {splits or "none"})')
    if not records and not reasons:
        raise DataError(f'{where}: no videos ({", ".join(VIDEO_EXTENSIONS)}) in any class '
                        f'folder')
    usable = []
    for record in records:
        if record.label not in classes:
            reasons.append(f'{record.origin or record.path}: label {record.label!r} is not in '
                           f'the class list {classes}')
        else:
            usable.append(record)
    cache = ClipCache(cache_dir) if cache_dir else None
    videos = _check_videos([r for r in usable if r.kind == 'video'], cache, spec, reasons)
    bags = _check_bag_spans([r for r in usable if r.kind == 'bag'], reasons)
    kept = videos + bags
    for reason in reasons:
        log.warning('skipping clip: %s', reason)
    if not kept:
        shown = '; '.join(reasons[:3]) + (f'; ... {len(reasons) - 3} more'
                                           if len(reasons) > 3 else '')
        raise DataError(f'{where}: no usable clips ({len(reasons)} skipped: {shown})')
    if reasons:
        warnings.warn(f'{where}: skipped {len(reasons)} of {len(kept) + len(reasons)} clips; '
                      f'first: {reasons[0]}', DataWarning, stacklevel=2)
    return ClipDataset(kept, classes, spec, train=train, cache_dir=cache_dir, seed=seed,
                       skip_reasons=reasons, name=where, augment=augment)
