"""What one labelled clip in a data set points at, whatever format listed it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClipRecord:
    """A labelled stretch of video: a video file, or an image topic in a rosbag2 bag.

    start_s/end_s (None = whole source) are seconds from the start of the video, or from
    the bag's first message. `origin` says where the record came from, for messages.
    """

    path: Path
    label: str
    split: str
    kind: str = 'video'  # 'video' or 'bag'
    start_s: float | None = None
    end_s: float | None = None
    topic: str | None = None
    origin: str = ''

    def describe(self) -> str:
        span = '' if self.start_s is None and self.end_s is None else \
            f' [{self.start_s}, {self.end_s}) s'
        topic = f' topic {self.topic}' if self.topic else ''
        return f'{self.path}{topic}{span}'
