"""Synthetic motion clips whose class can only be read from motion, never from one frame.

Each clip shows one textured object without rotational symmetry on a cluttered, textured
background, with small drifting distractors, camera jitter, flicker and pixel noise. The
class says how the object changes over time: it moves left/right/up/down, rotates clockwise
or counter-clockwise (as seen on screen), grows or shrinks.

Why a single frame cannot tell the class: the object's state (position, size, angle)
follows a straight line through a randomly drawn mid-clip state, symmetric in time, and
every class also receives a "virtual" offset, drawn from the same distribution, on each
axis it does not move along. So, pooled over the clip's frames, the object's position,
size and angle have exactly the same distribution for every class (move_left and
move_right, grow and shrink are even mirror images in time). Everything else (shape,
colours, textures, clutter, distractors, jitter, noise) is drawn independently of the
class. A per-frame classifier therefore has nothing to learn beyond chance.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import cv2
import numpy as np

from vas_ros.errors import DataError

CLASSES = ('grow', 'move_down', 'move_left', 'move_right', 'move_up', 'rotate_ccw',
           'rotate_cw', 'shrink')

# Directions in image coordinates (x to the right, y downwards).
_MOVES = {'move_left': (-1.0, 0.0), 'move_right': (1.0, 0.0),
          'move_up': (0.0, -1.0), 'move_down': (0.0, 1.0)}
# Object radius as a fraction of the frame side, in every frame of every class.
_RADIUS_RANGE = (0.09, 0.25)
# Whole-clip changes: travel (fraction of frame side), rotation (degrees), size (log factor).
_TRAVEL_RANGE = (0.22, 0.38)
_ROTATION_RANGE = (60.0, 130.0)
_LOG_SCALE_RANGE = (math.log(1.5), math.log(2.1))
_SPRITE = 128  # side of the object sprite drawn once per clip, in pixels
_SPRITE_RADIUS = 50.0


def _colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(60, 256)]]],
                   dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray,
             other: np.ndarray) -> np.ndarray:
    """A [h, w, 3] float32 texture mixing two colours with a random pattern."""
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # plain with soft shading
        mix = np.full((h, w), rng.uniform(0.0, 0.3), np.float32)
    elif kind == 1:  # stripes at a random angle
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 18) * max(h, w) / 112
        phase = xx * math.cos(angle) + yy * math.sin(angle)
        mix = (np.sin(phase * 2 * math.pi / period) > 0).astype(np.float32)
    elif kind == 2:  # checker
        cell = max(2.0, rng.uniform(5, 16) * max(h, w) / 112)
        mix = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    elif kind == 3:  # linear gradient
        angle = rng.uniform(0, 2 * math.pi)
        ramp = xx * math.cos(angle) + yy * math.sin(angle)
        mix = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    else:  # smooth blobs
        coarse = rng.random((rng.integers(3, 7), rng.integers(3, 7))).astype(np.float32)
        mix = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mix = mix[..., None]
    return base * (1 - mix) + other * mix


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """Textured background with static clutter shapes, float32 [side, side, 3]."""
    canvas = _texture(rng, side, side, _colour(rng) * rng.uniform(0.4, 1.0),
                      _colour(rng) * rng.uniform(0.4, 1.0))
    for _ in range(rng.integers(2, 7)):
        colour = tuple(float(c) for c in _colour(rng) * rng.uniform(0.5, 1.0))
        centre = (int(rng.integers(0, side)), int(rng.integers(0, side)))
        extent = max(1, int(rng.uniform(0.03, 0.09) * side))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(canvas, centre, extent, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            corner = (centre[0] + extent, centre[1] + int(extent * rng.uniform(0.5, 2)))
            cv2.rectangle(canvas, centre, corner, colour, -1, cv2.LINE_AA)
        else:
            cv2.line(canvas, centre, (int(rng.integers(0, side)), int(rng.integers(0, side))),
                     colour, max(1, side // 60), cv2.LINE_AA)
    return canvas


def _object_polygon(rng: np.random.Generator) -> np.ndarray:
    """Outline of an object without rotational symmetry, in unit-radius coordinates."""
    if rng.random() < 0.6:  # irregular star-convex polygon
        n = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(0.45, 1.0, n)
        radii[rng.integers(0, n)] = 1.0  # one clear "tip" so orientation is visible
    else:  # an arrow / letter-like outline (L, T or arrow), randomly proportioned
        kind = rng.integers(0, 3)
        t = rng.uniform(0.3, 0.5)
        if kind == 0:
            pts = [(-1, -1), (-1 + t * 2, -1), (-1 + t * 2, 1 - t * 2), (1, 1 - t * 2),
                   (1, 1), (-1, 1)]
        elif kind == 1:
            pts = [(-1, -1), (1, -1), (1, -1 + t * 2), (t, -1 + t * 2), (t, 1), (-t, 1),
                   (-t, -1 + t * 2), (-1, -1 + t * 2)]
        else:
            pts = [(1, 0), (0, -1), (0, -t), (-1, -t), (-1, t), (0, t), (0, 1)]
        poly = np.array(pts, np.float64)
        poly -= poly.mean(axis=0)
        poly /= np.abs(poly).max()
        return poly
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _object_sprite(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Textured object sprite (float32 RGB) and its soft mask, both _SPRITE x _SPRITE."""
    poly = _object_polygon(rng) * _SPRITE_RADIUS + _SPRITE / 2
    mask = np.zeros((_SPRITE, _SPRITE), np.float32)
    pts = np.round(poly * 16).astype(np.int32)  # 4 fractional bits for sub-pixel edges
    cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA, shift=4)
    sprite = _texture(rng, _SPRITE, _SPRITE, _colour(rng), _colour(rng))
    outline = (20.0, 20.0, 20.0) if rng.random() < 0.5 else (235.0, 235.0, 235.0)
    cv2.polylines(sprite, [pts], True, outline, int(rng.integers(3, 6)), cv2.LINE_AA, shift=4)
    cv2.polylines(mask, [pts], True, 1.0, 3, cv2.LINE_AA, shift=4)
    return sprite, mask


def _paste(canvas: np.ndarray, sprite: np.ndarray, mask: np.ndarray, centre, radius_px: float,
           angle_deg: float) -> np.ndarray:
    """Alpha-blend the sprite scaled/rotated about its centre onto canvas at centre.

    Returns the object's coverage (alpha) on the canvas.
    """
    scale = radius_px / _SPRITE_RADIUS
    matrix = cv2.getRotationMatrix2D((_SPRITE / 2, _SPRITE / 2), angle_deg, scale)
    matrix[:, 2] += np.asarray(centre, np.float64) - _SPRITE / 2
    side = canvas.shape[1], canvas.shape[0]
    warped = cv2.warpAffine(sprite, matrix, side, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(mask, matrix, side, flags=cv2.INTER_LINEAR)[..., None]
    canvas *= 1 - alpha
    canvas += warped * alpha
    return alpha[..., 0]


def render_clip(label: str, rng: np.random.Generator, size: int = 112,
                frames: int = 16) -> np.ndarray:
    """One clip of class `label` as uint8 RGB [frames, size, size, 3]; deterministic in rng."""
    return render_clip_with_truth(label, rng, size=size, frames=frames)[0]


def render_clip_with_truth(label: str, rng: np.random.Generator, size: int = 112,
                           frames: int = 16) -> tuple[np.ndarray, dict]:
    """`render_clip` plus the object's true state per frame, for tests and figures.

    The dict holds `centre` [T, 2] (x, y pixels in the output frame, including the camera
    jitter), `radius` [T] pixels, `angle` [T] degrees (OpenCV convention: positive is
    counter-clockwise on screen, so rotate_ccw increases it) and `mask` [T, H, W] float32
    object coverage.
    """
    if label not in CLASSES:
        raise DataError(f'unknown synthetic class {label!r}; classes are {list(CLASSES)}')
    if size < 16 or frames < 2:
        raise DataError(f'synthetic clips need size >= 16 and frames >= 2, got size={size}, '
                        f'frames={frames}')
    margin = max(2, int(round(0.04 * size)))  # room for camera jitter
    side = size + 2 * margin
    background = _background(rng, side)
    sprite, mask = _object_sprite(rng)

    # Time runs symmetrically around the middle of the clip, u in [-1/2, 1/2].
    u = (np.arange(frames) - (frames - 1) / 2) / (frames - 1)

    def virtual(low: float, high: float) -> float:
        """Offset a static quantity as a moving one would be at a random frame."""
        return float(rng.uniform(low, high) * u[rng.integers(0, frames)])

    # Size (log radius): mid value so that every frame stays inside _RADIUS_RANGE.
    log_lo, log_hi = (math.log(r) for r in _RADIUS_RANGE)
    half = _LOG_SCALE_RANGE[1] / 2
    log_mid = rng.uniform(log_lo + half, log_hi - half)
    if label in ('grow', 'shrink'):
        rate = rng.uniform(*_LOG_SCALE_RANGE) * (1 if label == 'grow' else -1)
        log_radius = log_mid + rate * u
    else:
        log_radius = np.full(frames, log_mid + virtual(*_LOG_SCALE_RANGE))
    radius = np.exp(log_radius) * size

    # Angle: uniform on the circle, so rotation leaves its distribution unchanged.
    angle_mid = rng.uniform(0, 360)
    if label in ('rotate_cw', 'rotate_ccw'):
        turn = rng.uniform(*_ROTATION_RANGE) * (1 if label == 'rotate_ccw' else -1)
        angle = angle_mid + turn * u
    else:
        angle = np.full(frames, angle_mid)

    # Position: mid point uniform in a central box; travel (or a virtual one) on each axis.
    box = 0.5 - _TRAVEL_RANGE[1] / 2 - 0.06
    centre_mid = rng.uniform(0.5 - box, 0.5 + box, 2)
    direction = np.array(_MOVES.get(label, (0.0, 0.0)))
    travel = rng.uniform(*_TRAVEL_RANGE)
    for axis in (0, 1):
        if direction[axis] == 0:
            centre_mid[axis] += virtual(*_TRAVEL_RANGE)
    centre = (centre_mid[None, :] + direction[None, :] * travel * u[:, None]) * size + margin

    # Distractors: small blobs drifting in random directions, independent of the class.
    distractors = []
    for _ in range(rng.integers(0, 3)):
        heading = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.05, 0.25) * size
        start = rng.uniform(0.1, 0.9, 2) * size + margin
        distractors.append((start, speed * np.array([math.cos(heading), math.sin(heading)]),
                            max(1, int(rng.uniform(0.025, 0.05) * size)),
                            tuple(float(c) for c in _colour(rng))))

    jitter = rng.normal(0, 0.15 * margin, (frames, 2)).clip(-margin, margin)
    flicker = rng.normal(1.0, 0.03, frames)
    noise_sigma = rng.uniform(1.0, 6.0)
    out = np.empty((frames, size, size, 3), np.uint8)
    masks = np.empty((frames, size, size), np.float32)
    for t in range(frames):
        canvas = background.copy()
        for start, velocity, extent, colour in distractors:
            pos = start + velocity * u[t]
            cv2.circle(canvas, (int(round(pos[0] * 16)), int(round(pos[1] * 16))), extent * 16,
                       colour, -1, cv2.LINE_AA, shift=4)
        coverage = _paste(canvas, sprite, mask, centre[t], radius[t], angle[t])
        dx, dy = jitter[t]
        shift = np.array([[1, 0, -margin - dx], [0, 1, -margin - dy]], np.float64)
        view = cv2.warpAffine(canvas, shift, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        masks[t] = cv2.warpAffine(coverage, shift, (size, size), flags=cv2.INTER_LINEAR)
        view = view * flicker[t] + rng.normal(0, noise_sigma, view.shape)
        out[t] = np.clip(view, 0, 255).astype(np.uint8)
    truth = {'centre': centre - margin - jitter, 'radius': radius, 'angle': angle,
             'mask': masks}
    return out, truth


def clip_rng(seed: int, split: str, label: str, index: int) -> np.random.Generator:
    """Generator for one clip: stable for (seed, split, label, index), whatever else exists."""
    key = [int(seed), zlib.crc32(split.encode()), zlib.crc32(label.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


def write_synthetic_dataset(out, per_class: int, seed: int, splits=('train', 'val'),
                            size: int = 112, frames: int = 16, fps: float = 15,
                            progress: bool = True) -> Path:
    """Write OUT/<split>/<class>/<class>_<i>.mp4 for every class; returns the root.

    Videos are MPEG-4 Part 2 in MP4 (yuv420p, quantiser 2): lossy (mean absolute error about
    3.5 grey levels at 112 px, mostly chroma subsampling), so decoded frames differ slightly
    from `render_clip` output, but they are identical from one run to the next.
    """
    from tqdm import tqdm

    from vas_ros.data.video_io import write_video

    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f'{root}: exists and is not a directory')
    if per_class < 1:
        raise DataError(f'--per-class must be >= 1, got {per_class}')
    if size % 2:
        raise DataError(f'--size must be even for H.264 (yuv420p), got {size}')
    splits = tuple(splits)
    if not splits or any(not s or '/' in s for s in splits):
        raise DataError(f'invalid split names {list(splits)}')
    jobs = [(s, c, i) for s in splits for c in CLASSES for i in range(per_class)]
    for split, label, index in tqdm(jobs, desc='synth', unit='clip', disable=not progress):
        clip = render_clip(label, clip_rng(seed, split, label, index), size=size,
                           frames=frames)
        write_video(root / split / label / f'{label}_{index:04d}.mp4', clip, fps)
    info = {'generator': 'vas_ros.data.synth', 'seed': seed, 'per_class': per_class,
            'splits': list(splits), 'size': size, 'frames': frames, 'fps': fps,
            'classes': list(CLASSES), 'codec': 'mpeg4 (MPEG-4 Part 2) yuv420p q=2'}
    (root / 'synth.json').write_text(json.dumps(info, indent=2) + '\n')
    return root
