"""Which frames of a clip a stream still has to run: the node's clips in, stream steps out.

The node's `FrameBuffer` hands out a clip (the last `frames` sampled frames) every `hop`
camera frames. With a frame stride s the clips interleave s sampling phases (at hop 1,
clip k and clip k + s share all frames but one). `ClipStreams` keeps one `FrameStream`
per phase and, for each clip, continues the stream whose newest frame is in the clip
(the same frame object, as the buffer hands them out; by stamp only when the clip's
stamps are distinct and increasing): only the frames after it are run. A clip that
continues no stream resets the least recently used one and runs the whole clip, whose
result is then exactly the clip forward. That happens on the first clip, when time goes
back (a looping bag, a restarted camera), after a gap in the frames, and when more clips
were dropped than a window covers; the node also resets on a resolution change and a
model swap.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from vas_ros.errors import VasError
from vas_ros.models.stream import FrameStream, choose_stream_runner, fast_stream_model

# A gap between two sampled frames longer than this many times the clip's usual spacing
# (and than MIN_GAP_S) means the frames stopped: the stream restarts from the clip.
GAP_FACTOR = 3.0
MIN_GAP_S = 1.0


MAX_PHASES = 64


@dataclass
class _Phase:
    stream: FrameStream
    last_stamp: float | None = None
    last_frame: object = None
    logits: object = None
    used: int = 0

    def clear(self) -> None:
        """Start this phase's stream over: nothing seen, nothing to continue."""
        self.stream.reset()
        self.last_stamp, self.logits, self.last_frame = None, None, None


class ClipStreams:
    """Up to `phases` stream states over clips given as their frames' stamps."""

    def __init__(self, model, phases: int = 1, device='cpu', runner: str = 'torchscript'):
        """`runner`: a FrameStream runner, or 'auto' for the faster one measured here
        (`choose_stream_runner`; `choice` holds its medians, `runner` the winner)."""
        if isinstance(phases, bool) or not isinstance(phases, int) \
                or not 1 <= phases <= MAX_PHASES:
            raise VasError(f'stream phases must be an integer in 1-{MAX_PHASES} (the '
                           f'model\'s frame stride), got {phases!r}')
        prepared, compiled = fast_stream_model(model), {}  # shared by every phase
        self.choice: dict[str, float] = {}  # runner -> median ms per step ('auto')
        if runner == 'auto':  # about a second; the winner's prepared step is kept
            prepared_by: dict = {}
            runner, self.choice = choose_stream_runner(prepared, compiled=prepared_by)
            compiled = prepared_by[runner]
        self.runner = runner
        self.phases = [_Phase(FrameStream(prepared, runner=runner, compiled=compiled))
                       for _ in range(phases)]
        self.phases[0].stream.warm_up(device=device)  # prepare now, not on a camera frame
        self.resets: Counter = Counter()  # why streams restarted
        self.frames_run = 0
        self._clock = 0

    def reset(self, reason: str = '') -> None:
        """Forget every stream (a resolution change, a model swap); `reason` is counted."""
        for phase in self.phases:
            phase.clear()
        if reason:
            self.resets[reason] += 1

    def plan(self, stamps: list[float], frames: list | None = None) -> tuple[int, int]:
        """(phase, index of the first frame to run) for a clip with these frame stamps
        (and frames: a frame a stream ran last is recognised by identity)."""
        self._clock += 1
        try:
            stamps = [float(s) for s in stamps]
        except (TypeError, ValueError):
            raise VasError(f'stream clip stamps must be numbers, got {list(stamps)!r:.80}') \
                from None
        spacing = [b - a for a, b in zip(stamps, stamps[1:])]
        distinct = all(step > 0 for step in spacing)
        gap = max(MIN_GAP_S, GAP_FACTOR * statistics.median(spacing)) if spacing else MIN_GAP_S
        latest = max((p.last_stamp for p in self.phases if p.last_stamp is not None),
                     default=None)
        reason = ''
        for i, phase in enumerate(self.phases):
            j = self._position(phase, stamps, frames, distinct)
            if j is None:
                continue
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
        phase.clear()
        phase.used = self._clock
        self.resets[reason] += 1
        return i, 0

    @staticmethod
    def _position(phase: _Phase, stamps: list[float], frames, distinct: bool) -> int | None:
        """Where in the clip the phase's last frame is, or None."""
        if phase.last_stamp is None:
            return None
        if frames is not None and phase.last_frame is not None:
            for j in range(len(frames) - 1, -1, -1):
                if frames[j] is phase.last_frame:
                    return j
        if distinct and phase.last_stamp in stamps:  # equal stamps would be ambiguous
            return stamps.index(phase.last_stamp)
        return None

    def stream(self, phase: int) -> FrameStream:
        return self.phases[phase].stream

    def advance(self, phase: int, stamp: float, logits, frames: int,
                last_frame=None) -> None:
        """Record that `phase` ran `frames` frames up to `stamp` (the frame object
        `last_frame`), giving `logits`."""
        entry = self.phases[phase]
        entry.last_stamp, entry.logits = float(stamp), logits
        entry.last_frame = last_frame
        self.frames_run += int(frames)

    def last_logits(self, phase: int):
        return self.phases[phase].logits
