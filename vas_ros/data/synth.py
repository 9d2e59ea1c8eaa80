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

With `with_none`, a ninth class `none` holds clips in which the object never moves (it
gets virtual offsets on every axis, so its pooled state matches the other classes):
a static scene, distractors moving on their own, or a camera that shakes hard. A model
trained with it can say that nothing of interest happens.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import cv2
import numpy as np

from vas_ros.atomic import write_json
from vas_ros.data.motions import CLASSES, MARKER, dataset_classes, written_by
from vas_ros.data.randomisation import FACTORS, check_factors
from vas_ros.errors import DataError
from vas_ros.models.spec import BACKGROUND_CLASS

# What a `none` clip shows instead of an actor's motion.
NONE_KINDS = ('static', 'distractors', 'shake')
RENDERERS = ('synth', 'holdout')
GENERATOR = 'vas_ros.data.synth'


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
    return _sprite_from(rng, _object_polygon(rng))


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
                frames: int = 16, factors=FACTORS) -> np.ndarray:
    """One clip of class `label` as uint8 RGB [frames, size, size, 3]; deterministic in rng."""
    return render_clip_with_truth(label, rng, size=size, frames=frames, factors=factors)[0]


def _factor_rngs(rng: np.random.Generator) -> dict:
    """One generator per factor, from one draw of `rng` (always made, whatever factors
    are on), so switching a factor off leaves every other draw of the clip as it was."""
    base = int(rng.integers(0, 2**63))
    return {name: np.random.default_rng([base, zlib.crc32(name.encode())]) for name in FACTORS}


def _profile(frames: int, rng: np.random.Generator | None) -> np.ndarray:
    """The motion's progress per frame, in [-1/2, 1/2]: linear over the whole clip, or
    (mid_motion) over a window of 50-100 % of it with the actor still before and after."""
    u = (np.arange(frames) - (frames - 1) / 2) / (frames - 1)
    if rng is None or rng.random() < 0.5:
        return u
    width = rng.uniform(0.5, 1.0)
    start = rng.uniform(-0.5, 0.5 - width)
    return np.clip((u - start) / width - 0.5, -0.5, 0.5)


def _natural_background(rng: np.random.Generator, side: int) -> np.ndarray:
    """1/f ('pink') noise in colour: the spectrum of natural images, float32 [side, side, 3]."""
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / side) ** rng.uniform(0.8, 1.4)
    planes = []
    for _ in range(3):
        spectrum = falloff * np.exp(2j * np.pi * rng.random(falloff.shape))
        plane = np.fft.irfft2(spectrum, s=(side, side))
        planes.append((plane - plane.mean()) / (plane.std() + 1e-9))
    # mostly brightness, a little colour, as in photographs
    tint = rng.normal(0, 1, (2, 3)) * rng.uniform(0.0, 0.35)
    mix = planes[0][..., None] + planes[1][..., None] * tint[0] + planes[2][..., None] * tint[1]
    base = _colour(rng) * rng.uniform(0.4, 0.9)
    canvas = base + mix * rng.uniform(12, 40)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    angle = rng.uniform(0, 2 * math.pi)
    gradient = (xx * math.cos(angle) + yy * math.sin(angle))[..., None]
    canvas = canvas + gradient * rng.uniform(-80, 80)
    return np.clip(canvas, 0, 255).astype(np.float32)


def _extra_polygon(rng: np.random.Generator) -> np.ndarray:
    """A star or a notched ellipse (the `shapes` factor), unit radius, not symmetric."""
    if rng.random() < 0.5:
        points = int(rng.integers(4, 8))
        angles = np.linspace(0, 2 * math.pi, 2 * points, endpoint=False)
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.35, 0.6))
        radii = radii * rng.uniform(0.75, 1.0, 2 * points)
        radii[0] = 1.0  # one longest point shows the orientation
    else:
        angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        aspect = rng.uniform(0.45, 0.8)
        radii = 1.0 / np.sqrt(np.cos(angles) ** 2 + (np.sin(angles) / aspect) ** 2)
        notch = np.abs(((angles - rng.uniform(0.3, 1.2)) + math.pi) % (2 * math.pi) - math.pi)
        radii = radii * np.where(notch < 0.35, 0.55, 1.0)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _sprite_from(rng: np.random.Generator, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Textured sprite (float32 RGB) and soft mask of a unit-radius outline."""
    poly = poly * _SPRITE_RADIUS + _SPRITE / 2
    mask = np.zeros((_SPRITE, _SPRITE), np.float32)
    pts = np.round(poly * 16).astype(np.int32)  # 4 fractional bits for sub-pixel edges
    cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA, shift=4)
    sprite = _texture(rng, _SPRITE, _SPRITE, _colour(rng), _colour(rng))
    outline = (20.0, 20.0, 20.0) if rng.random() < 0.5 else (235.0, 235.0, 235.0)
    cv2.polylines(sprite, [pts], True, outline, int(rng.integers(3, 6)), cv2.LINE_AA, shift=4)
    cv2.polylines(mask, [pts], True, 1.0, 3, cv2.LINE_AA, shift=4)
    return sprite, mask


def _occluder(rng: np.random.Generator, side: int) -> np.ndarray:
    """Coverage [side, side] of a pole or beam in front of the scene (the `occlusion` factor)."""
    cover = np.zeros((side, side), np.float32)
    width = max(2, int(rng.uniform(0.05, 0.12) * side))
    at = int(rng.uniform(0.2, 0.8) * side)
    if rng.random() < 0.5:
        cover[:, at:at + width] = 1.0
    else:
        cover[at:at + width, :] = 1.0
    return cover


def render_clip_with_truth(label: str, rng: np.random.Generator, size: int = 112,
                           frames: int = 16, factors=FACTORS) -> tuple[np.ndarray, dict]:
    """`render_clip` plus the object's true state per frame, for tests and figures.

    `factors`: the randomisation factors (FACTORS) switched on; each one that is on is
    applied to a share of the clips, drawn from its own generator, so a clip rendered with
    one factor more differs in that factor only. The actor's motion, which decides the
    class, is the same whichever factors are on, except under `speed` (faster or slower)
    and `mid_motion` (a part of the clip only).

    The dict holds `centre` [T, 2] (x, y pixels in the output frame, including the camera
    jitter and pan), `radius` [T] pixels, `angle` [T] degrees (OpenCV convention: positive
    is counter-clockwise on screen, so rotate_ccw increases it) and `mask` [T, H, W] float32
    visible object coverage (an occluder hides part of it).
    """
    if label not in CLASSES and label != BACKGROUND_CLASS:
        raise DataError(f'unknown synthetic class {label!r}; classes are {list(CLASSES)} '
                        f'and {BACKGROUND_CLASS!r}')
    if size < 16 or frames < 2:
        raise DataError(f'synthetic clips need size >= 16 and frames >= 2, got size={size}, '
                        f'frames={frames}')
    on = check_factors(factors)
    extra = _factor_rngs(rng)

    def use(name: str, share: float) -> np.random.Generator | None:
        """The factor's generator when it is on and drawn for this clip, else None."""
        gen = extra[name]
        return gen if name in on and gen.random() < share else None

    margin = max(2, int(round(0.08 * size)))  # room for camera jitter and pan
    side = size + 2 * margin
    background = _background(rng, side)
    if (gen := use('backgrounds', 0.5)) is not None:
        background = _natural_background(gen, side)
    sprite, mask = _object_sprite(rng)
    if (gen := use('shapes', 0.5)) is not None:
        sprite, mask = _sprite_from(gen, _extra_polygon(gen))
    if (gen := use('objects', 0.6)) is not None:  # still objects beside the actor
        for _ in range(int(gen.integers(1, 4))):
            poly = _extra_polygon(gen) if gen.random() < 0.5 else _object_polygon(gen)
            still, still_mask = _sprite_from(gen, poly)
            spot = gen.uniform(0.1, 0.9, 2) * size + margin
            _paste(background, still, still_mask, spot, gen.uniform(0.06, 0.14) * size,
                   gen.uniform(0, 360))

    # Time runs symmetrically around the middle of the clip, u in [-1/2, 1/2]; the motion
    # follows its profile (all of u, or a window of it under mid_motion).
    u = _profile(frames, use('mid_motion', 1.0))
    pace = use('speed', 1.0)
    pace = pace.uniform(0.7, 1.25) if pace is not None else 1.0

    def virtual(low: float, high: float) -> float:
        """Offset a static quantity as a moving one would be at a random frame."""
        return float(rng.uniform(low, high) * u[rng.integers(0, frames)])

    # Size (log radius): mid value so that every frame stays inside _RADIUS_RANGE.
    log_lo, log_hi = (math.log(r) for r in _RADIUS_RANGE)
    half = _LOG_SCALE_RANGE[1] / 2
    log_mid = rng.uniform(log_lo + half, log_hi - half)
    if label in ('grow', 'shrink'):
        rate = rng.uniform(*_LOG_SCALE_RANGE) * (1 if label == 'grow' else -1)
        log_radius = log_mid + rate * min(pace, 1.0) * u
    else:
        log_radius = np.full(frames, log_mid + virtual(*_LOG_SCALE_RANGE))
    radius = np.exp(log_radius) * size

    # Angle: uniform on the circle, so rotation leaves its distribution unchanged.
    angle_mid = rng.uniform(0, 360)
    if label in ('rotate_cw', 'rotate_ccw'):
        turn = rng.uniform(*_ROTATION_RANGE) * (1 if label == 'rotate_ccw' else -1)
        angle = angle_mid + turn * pace * u
    else:
        angle = np.full(frames, angle_mid)

    # Position: mid point uniform in a central box; travel (or a virtual one) on each axis.
    box = 0.5 - _TRAVEL_RANGE[1] / 2 - 0.06
    centre_mid = rng.uniform(0.5 - box, 0.5 + box, 2)
    direction = np.array(_MOVES.get(label, (0.0, 0.0)))
    travel = rng.uniform(*_TRAVEL_RANGE) * pace
    for axis in (0, 1):
        if direction[axis] == 0:
            centre_mid[axis] += virtual(*_TRAVEL_RANGE)
    centre = (centre_mid[None, :] + direction[None, :] * travel * u[:, None]) * size + margin

    # Distractors: small blobs drifting in random directions, independent of the class.
    # (Draws for `none` come only in its own branches, so the other classes' clips stay
    # what they were before it existed.)
    kind = NONE_KINDS[int(rng.integers(0, 3))] if label == BACKGROUND_CLASS else None
    if kind == 'distractors':
        count = int(rng.integers(2, 5))
    elif kind is not None:
        count = 0
    else:
        count = int(rng.integers(0, 3))
    distractors = []
    for _ in range(count):
        heading = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.05, 0.25) * size
        start = rng.uniform(0.1, 0.9, 2) * size + margin
        distractors.append((start, speed * np.array([math.cos(heading), math.sin(heading)]),
                            max(1, int(rng.uniform(0.025, 0.05) * size)),
                            tuple(float(c) for c in _colour(rng))))
    if 'distractors' not in on and kind != 'distractors':
        distractors = []
    spinner = use('distractors', 0.5)
    if spinner is not None:  # a small bar that spins and drifts on its own
        spinner = (spinner.uniform(0.15, 0.85, 2) * size + margin,
                   spinner.uniform(-0.15, 0.15, 2) * size, spinner.uniform(0, 180),
                   spinner.uniform(-200, 200), max(2, int(spinner.uniform(0.04, 0.08) * size)),
                   tuple(float(c) for c in _colour(spinner)))

    shake = 0.5 if kind == 'shake' else 0.15
    jitter = rng.normal(0, shake * margin / 2, (frames, 2)).clip(-margin / 2, margin / 2)
    if 'shake' not in on and kind != 'shake':
        jitter[:] = 0.0
    if (gen := use('ego_motion', 0.4)) is not None:  # a slow pan of the whole view
        jitter += np.outer(u, gen.uniform(-0.5, 0.5, 2) * margin)
    flicker = rng.normal(1.0, 0.03, frames)
    noise_sigma = rng.uniform(1.0, 6.0)
    light = use('lighting', 0.6)
    ramp = np.ones(frames)
    shading = None
    if light is not None:  # the light changes over the clip and falls off across the view
        ramp = 1.0 + light.uniform(-0.3, 0.3) * u
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        angle_l = light.uniform(0, 2 * math.pi)
        shading = 1.0 + light.uniform(-0.35, 0.35) * (
            (xx - 0.5) * math.cos(angle_l) + (yy - 0.5) * math.sin(angle_l))
    if 'lighting' not in on:
        flicker[:] = 1.0
    blur = use('blur', 0.4)
    blur = blur.uniform(0.5, 1.6) if blur is not None else 0.0
    jpeg = use('compression', 0.5)
    quality = int(jpeg.integers(25, 80)) if jpeg is not None else None
    occluder = use('occlusion', 0.4)
    occluder = _occluder(occluder, size) if occluder is not None else None
    grain = extra['noise']
    out = np.empty((frames, size, size, 3), np.uint8)
    masks = np.empty((frames, size, size), np.float32)
    for t in range(frames):
        canvas = background.copy()
        for start, velocity, extent, colour in distractors:
            pos = start + velocity * u[t]
            cv2.circle(canvas, (int(round(pos[0] * 16)), int(round(pos[1] * 16))), extent * 16,
                       colour, -1, cv2.LINE_AA, shift=4)
        if spinner is not None:
            pos, drift, heading, spin, length, colour = spinner
            at = pos + drift * u[t]
            a = math.radians(heading + spin * u[t])
            tip = np.array([math.cos(a), math.sin(a)]) * length
            cv2.line(canvas, tuple(int(v) for v in at - tip), tuple(int(v) for v in at + tip),
                     colour, max(2, length // 4), cv2.LINE_AA)
        coverage = _paste(canvas, sprite, mask, centre[t], radius[t], angle[t])
        dx, dy = jitter[t]
        shift = np.array([[1, 0, -margin - dx], [0, 1, -margin - dy]], np.float64)
        view = cv2.warpAffine(canvas, shift, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        masks[t] = cv2.warpAffine(coverage, shift, (size, size), flags=cv2.INTER_LINEAR)
        if occluder is not None:
            view = view * (1 - occluder[..., None]) + occluder[..., None] * 70.0
            masks[t] *= 1 - occluder
        view = view * (flicker[t] * ramp[t])
        if shading is not None:
            view = view * shading[..., None]
        if blur:
            view = cv2.GaussianBlur(view, (0, 0), blur)
        if 'noise' in on:
            view = view + grain.normal(0, noise_sigma, view.shape)
        frame = np.clip(view, 0, 255).astype(np.uint8)
        if quality is not None:
            ok, code = cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
            frame = cv2.imdecode(code, cv2.IMREAD_UNCHANGED) if ok else frame
        out[t] = frame
    truth = {'centre': centre - margin - jitter, 'radius': radius, 'angle': angle,
             'mask': masks}
    return out, truth


def clip_rng(seed: int, split: str, label: str, index: int,
             salt: int | None = None) -> np.random.Generator:
    """Generator for one clip: stable for (seed, split, label, index), whatever else exists.

    A `salt` gives another renderer streams that no synth clip shares."""
    key = [int(seed), zlib.crc32(split.encode()), zlib.crc32(label.encode()), int(index)]
    if salt is not None:
        key.insert(0, int(salt))
    return np.random.default_rng(np.random.SeedSequence(key))


def write_synthetic_dataset(out, per_class: int, seed: int, splits=('train', 'val'),
                            size: int = 112, frames: int = 16, fps: float = 15,
                            progress: bool = True, with_none: bool = False,
                            renderer: str = 'synth', factors=FACTORS) -> Path:
    """Write OUT/<split>/<class>/<class>_<i>.mp4 for every class; returns the root.

    `renderer`: 'synth' (this module, for training) or 'holdout' (`vas_ros.data.holdout`,
    for out-of-distribution tests only). OUT/synth.json records which one wrote the set;
    a folder written by the other renderer is refused, so the two never mix.
    `factors`: the domain randomisation of `render_clip` (synth renderer only), recorded
    in the marker too.

    Videos are MPEG-4 Part 2 in MP4 (yuv420p, quantiser 2): lossy (mean absolute error about
    3.5 grey levels at 112 px, mostly chroma subsampling), so decoded frames differ slightly
    from `render_clip` output, but they are identical from one run to the next.
    """
    from tqdm import tqdm

    from vas_ros.data import holdout
    from vas_ros.data.video_io import write_video

    if renderer not in RENDERERS:
        raise DataError(f'renderer {renderer!r}: expected one of {list(RENDERERS)}')
    generator = holdout.GENERATOR if renderer == 'holdout' else GENERATOR
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f'{root}: exists and is not a directory')
    previous = written_by(root)
    if previous is not None and previous != generator:
        raise DataError(f'{root}: already holds data written by {previous}; write the '
                        f'{renderer} clips to another folder so the two never mix')
    if previous is None and root.is_dir() and any(root.iterdir()):
        raise DataError(f'{root}: not empty and not written by vas-ros data; clips written '
                        f'there would replace or mix with what it holds. Choose a new folder')
    if size < 16 or frames < 2:  # before the marker, so a refused run changes nothing
        raise DataError(f'synthetic clips need size >= 16 and frames >= 2, got size={size}, '
                        f'frames={frames}')
    if isinstance(per_class, bool) or not isinstance(per_class, int):
        raise DataError(f'--per-class must be an integer, got {per_class!r}')
    if per_class < 1:
        raise DataError(f'--per-class must be >= 1, got {per_class}')
    if size % 2:
        raise DataError(f'--size must be even for H.264 (yuv420p), got {size}')
    splits = tuple(splits)
    if not splits or any(not s or '/' in s for s in splits):
        raise DataError(f'invalid split names {list(splits)}')
    classes = dataset_classes(with_none)
    factors = sorted(check_factors(factors), key=FACTORS.index)
    if renderer == 'holdout':
        render = holdout.render_holdout_clip
    else:
        def render(label, rng, size, frames):
            return render_clip(label, rng, size=size, frames=frames, factors=factors)
    salt = holdout.SEED_SALT if renderer == 'holdout' else None
    # The marker goes first: an interrupted run is still known for what it wrote.
    info = {'generator': generator, 'seed': seed, 'per_class': per_class,
            'splits': list(splits), 'size': size, 'frames': frames, 'fps': fps,
            'classes': list(classes), 'codec': 'mpeg4 (MPEG-4 Part 2) yuv420p q=2'}
    if renderer == 'synth':
        info['factors'] = factors
    write_json(root / MARKER, info)
    jobs = [(s, c, i) for s in splits for c in classes for i in range(per_class)]
    for split, label, index in tqdm(jobs, desc=renderer, unit='clip', disable=not progress):
        clip = render(label, clip_rng(seed, split, label, index, salt=salt), size=size,
                      frames=frames)
        write_video(root / split / label / f'{label}_{index:04d}.mp4', clip, fps)
    return root
