"""What a model expects as input, stored in every checkpoint so a clip can be rebuilt.

Tensor contract shared by data, training and the robot runtime: a model is called as
`model(*[inputs[s] for s in spec.streams])`, each stream a float tensor
[B, C, T, H, W]: `rgb` has C=3 (RGB order, (x/255 - mean)/std); `flow` has C=2 (x, y
displacement in pixels at the model's input size, divided by `flow_scale` and clipped to
[-1, 1]; flow[t] is the motion from frame t to t+1, the last one repeated so that flow
has as many time steps as the clip).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from vas_ros.errors import GenomeError

STREAMS = ('rgb', 'flow')
STREAM_CHANNELS = {'rgb': 3, 'flow': 2}
FLOW_METHODS = ('dis', 'dis_fast', 'dis_medium', 'farneback')
# The class of clips in which nothing of interest happens: a model trained with it says
# so, and the runtime reports such a clip as "unknown", like a low-scoring one.
BACKGROUND_CLASS = 'none'
UNKNOWN_LABEL = 'unknown'


def reported_label(label: str, score: float, threshold: float) -> str:
    """What a runtime publishes for a top-1 `label` at `score`: UNKNOWN_LABEL when the
    score is below `threshold` or the model says nothing of interest happens."""
    if label == BACKGROUND_CLASS or score < threshold:
        return UNKNOWN_LABEL
    return label


# Far above every preset (at most 64 frames, 256 px): a clip past these is a typo or a
# damaged file, and would take gigabytes per clip.
MAX_FRAMES = 512
MAX_SIZE = 1024


def _finite_number(value) -> bool:
    import math

    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class InputSpec:
    frames: int
    size: int
    frame_stride: int = 1
    streams: tuple[str, ...] = ('rgb',)
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    flow_method: str = 'dis'
    flow_scale: float = 20.0
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in ('frames', 'size', 'frame_stride'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise GenomeError(f'input.{name}', f'must be a whole number, got {value!r}')
        if isinstance(self.streams, str) or not isinstance(self.streams, (list, tuple)):
            raise GenomeError('input.streams', f'must be a list of stream names, got '
                                               f'{self.streams!r}')
        for name in ('mean', 'std'):
            values = getattr(self, name)
            if (not isinstance(values, (list, tuple)) or len(values) != 3
                    or not all(_finite_number(v) for v in values)):
                raise GenomeError(f'input.{name}', f'needs three finite numbers, got {values!r}')
        if not _finite_number(self.flow_scale):
            raise GenomeError('input.flow_scale', f'must be a finite number, got '
                                                  f'{self.flow_scale!r}')
        if not isinstance(self.extra, dict):
            raise GenomeError('input.extra', f'must be a JSON object, got {self.extra!r}')
        object.__setattr__(self, 'streams', tuple(self.streams))
        object.__setattr__(self, 'mean', tuple(float(v) for v in self.mean))
        object.__setattr__(self, 'std', tuple(float(v) for v in self.std))
        self.validate()

    def validate(self) -> None:
        if not 1 <= self.frames <= MAX_FRAMES:
            raise GenomeError('input.frames', f'must be 1..{MAX_FRAMES}, got {self.frames}')
        if not 8 <= self.size <= MAX_SIZE:
            raise GenomeError('input.size', f'must be 8..{MAX_SIZE} pixels, got {self.size}')
        if not 1 <= self.frame_stride <= MAX_FRAMES:
            raise GenomeError('input.frame_stride', f'must be 1..{MAX_FRAMES}, got '
                                                    f'{self.frame_stride}')
        if not self.streams or any(s not in STREAMS for s in self.streams):
            raise GenomeError('input.streams', f'must be a non-empty subset of {STREAMS}, '
                              f'got {list(self.streams)}')
        if len(set(self.streams)) != len(self.streams):
            raise GenomeError('input.streams', f'repeats a stream: {list(self.streams)}')
        if min(self.std) <= 0:
            raise GenomeError('input.mean/std', 'std must be > 0')
        if self.flow_method not in FLOW_METHODS:
            raise GenomeError('input.flow_method', f'must be one of {FLOW_METHODS}, '
                              f'got {self.flow_method!r}')
        if self.flow_scale <= 0:
            raise GenomeError('input.flow_scale', f'must be > 0, got {self.flow_scale}')

    @property
    def span(self) -> int:
        """Source frames covered by one clip."""
        return (self.frames - 1) * self.frame_stride + 1

    @property
    def needs_flow(self) -> bool:
        return 'flow' in self.streams

    def shape(self, stream: str, batch: int = 1) -> tuple[int, int, int, int, int]:
        return (batch, STREAM_CHANNELS[stream], self.frames, self.size, self.size)

    def to_dict(self) -> dict:
        data = asdict(self)
        data['streams'] = list(self.streams)
        data['mean'] = list(self.mean)
        data['std'] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        if not isinstance(data, dict):
            raise GenomeError('input', f'must be a JSON object, got {type(data).__name__}')
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise GenomeError('input', f'unknown fields {sorted(unknown)}')
        if 'frames' not in data or 'size' not in data:
            raise GenomeError('input', 'needs at least "frames" and "size"')
        return cls(**data)
