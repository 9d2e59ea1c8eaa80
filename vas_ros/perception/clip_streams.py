"""Which frames of a clip a stream still has to run: the node's clips in, stream steps out.

The node's `FrameBuffer` hands out a clip (the last `frames` sampled frames) every `hop`
camera frames. With a frame stride s the clips interleave s sampling phases (at hop 1,
clip k and clip k + s share all frames but one). `ClipStreams` keeps one `FrameStream`
per phase and, for each clip, continues the stream whose newest frame is in the clip:
only the frames after it are run. A clip that continues no stream resets the least
recently used one and runs the whole clip, whose result is then exactly the clip
forward. That happens on the first clip, when time goes back (a looping bag, a restarted
camera), after a gap in the frames, and when more clips were dropped than a window
covers; the node also resets on a resolution change and a model swap.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from vas_ros.models.stream import FrameStream, fast_stream_model

# A gap between two sampled frames longer than this many times the clip's usual spacing
# (and than MIN_GAP_S) means the frames stopped: the stream restarts from the clip.
GAP_FACTOR = 3.0
MIN_GAP_S = 1.0


@dataclass
class _Phase:
    stream: FrameStream
    last_stamp: float | None = None
    logits: object = None
    used: int = 0


class ClipStreams:
    """Up to `phases` stream states over clips given as their frames' stamps."""

    def __init__(self, model, phases: int = 1):
        if int(phases) < 1:
            raise ValueError(f'phases must be >= 1, got {phases}')
        prepared = fast_stream_model(model)  # one copy, shared by every phase
        self.phases = [_Phase(FrameStream(prepared, trace=True)) for _ in range(int(phases))]
        self.resets: Counter = Counter()  # why streams restarted
        self.frames_run = 0
        self._clock = 0

    def reset(self, reason: str = '') -> None:
        """Forget every stream (a resolution change, a model swap); `reason` is counted."""
        for phase in self.phases:
            phase.stream.reset()
            phase.last_stamp, phase.logits = None, None
        if reason:
            self.resets[reason] += 1

    def plan(self, stamps: list[float]) -> tuple[int, int]:
        """(phase, index of the first frame to run) for a clip with these frame stamps."""
        self._clock += 1
        stamps = [float(s) for s in stamps]
        spacing = [b - a for a, b in zip(stamps, stamps[1:])]
        gap = max(MIN_GAP_S, GAP_FACTOR * statistics.median(spacing)) if spacing else MIN_GAP_S
        latest = max((p.last_stamp for p in self.phases if p.last_stamp is not None),
                     default=None)
        reason = ''
        for i, phase in enumerate(self.phases):
            if phase.last_stamp is None or phase.last_stamp not in stamps:
                continue
            j = len(stamps) - 1 - stamps[::-1].index(phase.last_stamp)
            if j + 1 < len(stamps) and stamps[j + 1] - stamps[j] > gap:
                reason = 'frames stopped'
                break
            phase.used = self._clock
            return i, j + 1
        i = min(range(len(self.phases)), key=lambda k: self.phases[k].used)
        phase = self.phases[i]
        if latest is not None and stamps[-1] < latest:
            reason = 'time went back'
        elif reason or (latest is not None and stamps[0] - latest > gap):
            reason = 'frames stopped'
        else:
            reason = 'start' if phase.last_stamp is None else 'missed frames'
        phase.stream.reset()
        phase.last_stamp, phase.logits, phase.used = None, None, self._clock
        self.resets[reason] += 1
        return i, 0

    def stream(self, phase: int) -> FrameStream:
        return self.phases[phase].stream

    def advance(self, phase: int, stamp: float, logits, frames: int) -> None:
        """Record that `phase` ran `frames` frames up to `stamp`, giving `logits`."""
        entry = self.phases[phase]
        entry.last_stamp, entry.logits = float(stamp), logits
        self.frames_run += int(frames)

    def last_logits(self, phase: int):
        return self.phases[phase].logits
