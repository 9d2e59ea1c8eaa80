"""Family `baseline`: reference networks every evolved model is compared against.

- `r2plus1d_18`, `r3d_18`, `mc3_18`: torchvision's video ResNets, random init, with a new
  classifier for our classes. They see space and time.
- `frame2d`: a torchvision ResNet-18 applied to each frame on its own, per-frame logits
  averaged over time. It never sees the order of frames, so it cannot tell a clip from
  the same clip played backwards: on the synthetic motion classes (move_left vs
  move_right, grow vs shrink, ...) it must stay at chance within each direction pair,
  which is the proof that the data needs time.

Genome: `{"arch": "r2plus1d_18", "frames": 16, "size": 112, "frame_stride": 1}`; all
models are called as `model(rgb)` with rgb `[B, 3, T, H, W]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vas_ros.models.genome import Genome, choice, integer, json_object
from vas_ros.models.registry import Family, register_family
from vas_ros.models.spec import MAX_FRAMES, MAX_SIZE, InputSpec

VIDEO_ARCHS = ('r2plus1d_18', 'r3d_18', 'mc3_18')
ARCHS = (*VIDEO_ARCHS, 'frame2d')
DEFAULTS = {'frames': 16, 'size': 112, 'frame_stride': 1}
# Normalisation torchvision used for its Kinetics video models; kept so that the same
# preprocessing would serve pretrained weights if a user loads them.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# ImageNet statistics for the per-frame 2D network.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Below this the video ResNets' five stride-2 stages leave nothing to pool.
MIN_SIZE = 16


@dataclass(frozen=True)
class BaselineGenome(Genome):
    """Which reference network, at which clip length, size and frame stride."""

    family: ClassVar[str] = 'baseline'

    arch: str
    frames: int = DEFAULTS['frames']
    size: int = DEFAULTS['size']
    frame_stride: int = DEFAULTS['frame_stride']

    @classmethod
    def from_dict(cls, data: dict) -> BaselineGenome:
        data = json_object(data, '', ('arch', *DEFAULTS), ('arch',))
        data = {**DEFAULTS, **data}
        return cls(arch=choice(data['arch'], 'arch', ARCHS),
                   frames=integer(data['frames'], 'frames', 1, MAX_FRAMES),
                   size=integer(data['size'], 'size', MIN_SIZE, MAX_SIZE),
                   frame_stride=integer(data['frame_stride'], 'frame_stride', 1, MAX_FRAMES))

    def to_dict(self) -> dict:
        return {'arch': self.arch, 'frames': self.frames, 'size': self.size,
                'frame_stride': self.frame_stride}

    def input_spec(self) -> InputSpec:
        video = self.arch in VIDEO_ARCHS
        return InputSpec(frames=self.frames, size=self.size, frame_stride=self.frame_stride,
                         streams=('rgb',), mean=KINETICS_MEAN if video else IMAGENET_MEAN,
                         std=KINETICS_STD if video else IMAGENET_STD)

    def build(self, num_classes: int):
        import torchvision.models.video as video_models

        if self.arch == 'frame2d':
            return _frame2d_class()(num_classes)
        return getattr(video_models, self.arch)(weights=None, num_classes=num_classes)


def _frame2d_class():
    import torch
    from torchvision.models import resnet18

    class PerFrameClassifier(torch.nn.Module):
        """A 2D CNN run on every frame independently; logits averaged over time."""

        def __init__(self, num_classes: int):
            super().__init__()
            self.backbone = resnet18(weights=None, num_classes=num_classes)

        def forward(self, rgb):
            batch, channels, frames, height, width = rgb.shape
            images = rgb.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
            logits = self.backbone(images)
            return logits.view(batch, frames, -1).mean(dim=1)

    return PerFrameClassifier


PRESETS = {name: {'arch': name, **DEFAULTS} for name in ARCHS}
DESCRIPTIONS = {
    'r2plus1d_18': 'torchvision R(2+1)D-18, random init (31.5M params, 16x112x112)',
    'r3d_18': 'torchvision R3D-18, random init (33.4M params, 16x112x112)',
    'mc3_18': 'torchvision MC3-18, random init (11.7M params, 16x112x112)',
    'frame2d': 'ResNet-18 on each frame alone, logits averaged: blind to motion direction',
}

register_family(Family('baseline', BaselineGenome, PRESETS, DESCRIPTIONS))
