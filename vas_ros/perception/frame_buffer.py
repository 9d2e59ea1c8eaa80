"""Stamped frames in, clips out: the sliding window between a camera and a video model.

A model wants `frames` frames taken every `frame_stride` source frames (or every
`stride_seconds` of stamp time, for cameras whose rate varies), and the robot wants a
prediction every `hop` frames. `FrameBuffer.push` keeps only the frames a future clip
can still use (memory stays bounded at any rate) and returns a `Clip` whenever one is due.
Time going backwards (a looping bag, a restarted camera) or a new frame size starts over.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vas_ros.errors import VasError


@dataclass
class Clip:
    """A clip ready for the model; `meta` is whatever came with its last frame.

    Frames are stacked on first use of `frames`, so that the copy happens in the inference
    thread, not in the camera callback that produced the clip.
    """

    frame_list: list  # T arrays uint8 [H, W, 3]
    stamps: list[float]
    index: int  # how many clips this buffer has produced before this one
    meta: Any = None
    received: float = 0.0  # monotonic time its last frame was pushed
    first_meta: Any = None  # what came with its first frame
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> np.ndarray:
        """uint8 [T, H, W, 3]."""
        if 'stacked' not in self.extra:
            self.extra['stacked'] = np.stack(self.frame_list)
        return self.extra['stacked']

    @property
    def first_stamp(self) -> float:
        return self.stamps[0]

    @property
    def last_stamp(self) -> float:
        return self.stamps[-1]


class FrameBuffer:
    """Turn a frame stream into clips of `frames` frames, one every `hop` pushed frames.

    - `frame_stride`: take every n-th source frame (ignored when `stride_seconds` is set);
    - `stride_seconds`: take the frames nearest to `stamp_last - k * stride_seconds`;
    - `hop`: produce a clip after every `hop` frames once the window is full (1 = every frame).
    Thread-safe: a camera callback may push while another thread changes `hop`.
    """

    def __init__(self, frames: int, frame_stride: int = 1, hop: int = 1,
                 stride_seconds: float | None = None, max_frames: int = 512):
        if int(frames) < 1:
            raise VasError(f'frame buffer: frames must be >= 1, got {frames}')
        if int(frame_stride) < 1:
            raise VasError(f'frame buffer: frame_stride must be >= 1, got {frame_stride}')
        if stride_seconds is not None and not stride_seconds > 0:
            raise VasError(f'frame buffer: stride_seconds must be > 0, got {stride_seconds}')
        self.frames = int(frames)
        self.frame_stride = int(frame_stride)
        self.stride_seconds = stride_seconds
        self.max_frames = int(max_frames)
        self._hop = 1
        self.hop = hop
        self._lock = threading.Lock()
        self._window: deque = deque()  # (stamp, frame, meta, received)
        self._since_clip = 0
        self.clips = 0
        self.pushed = 0
        self.resets = 0

    @property
    def hop(self) -> int:
        return self._hop

    @hop.setter
    def hop(self, value: int) -> None:
        if int(value) < 1:
            raise VasError(f'frame buffer: hop must be >= 1, got {value}')
        self._hop = int(value)

    @property
    def span_frames(self) -> int:
        """Source frames one clip covers (with a frame stride)."""
        return (self.frames - 1) * self.frame_stride + 1

    def __len__(self) -> int:
        return len(self._window)

    def clear(self) -> None:
        with self._lock:
            self._window.clear()
            self._since_clip = 0

    def push(self, frame: np.ndarray, stamp: float, meta: Any = None,
             received: float = 0.0) -> Clip | None:
        """Add one frame; return a clip when one is due, else None."""
        with self._lock:
            self.pushed += 1
            if self._window:
                last_stamp, last_frame = self._window[-1][0], self._window[-1][1]
                if stamp < last_stamp or last_frame.shape != frame.shape:
                    self._window.clear()
                    self._since_clip = 0
                    self.resets += 1
            self._window.append((float(stamp), frame, meta, received))
            self._trim()
            self._since_clip += 1
            if not self._full() or self._since_clip < self._hop:
                return None
            self._since_clip = 0
            clip = self._make_clip()
            self.clips += 1
            return clip

    def _trim(self) -> None:
        if self.stride_seconds is None:
            keep = self.span_frames
        else:
            horizon = self._window[-1][0] - (self.frames - 1) * self.stride_seconds
            # Keep one frame older than the horizon so the oldest slot has a neighbour.
            while len(self._window) > 1 and self._window[1][0] <= horizon:
                self._window.popleft()
            keep = self.max_frames
        while len(self._window) > keep:
            self._window.popleft()

    def _full(self) -> bool:
        if self.stride_seconds is None:
            return len(self._window) >= self.span_frames
        if len(self._window) < self.frames:
            return False
        needed = (self.frames - 1) * self.stride_seconds
        # Half a stride of slack: stamps from a real camera jitter.
        return self._window[-1][0] - self._window[0][0] >= needed - 0.5 * self.stride_seconds

    def _pick(self) -> list[int]:
        if self.stride_seconds is None:
            start = len(self._window) - self.span_frames
            return list(range(start, len(self._window), self.frame_stride))
        stamps = [item[0] for item in self._window]
        newest = stamps[-1]
        picked = []
        for k in range(self.frames - 1, -1, -1):
            target = newest - k * self.stride_seconds
            pos = bisect.bisect_left(stamps, target)
            candidates = [i for i in (pos - 1, pos) if 0 <= i < len(stamps)]
            picked.append(min(candidates, key=lambda i: abs(stamps[i] - target)))
        return picked

    def _make_clip(self) -> Clip:
        chosen = [self._window[i] for i in self._pick()]
        last = chosen[-1]
        return Clip(frame_list=[item[1] for item in chosen],
                    stamps=[item[0] for item in chosen], index=self.clips,
                    meta=last[2], received=last[3], first_meta=chosen[0][2])
