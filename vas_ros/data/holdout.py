"""A second renderer of the synthetic motion classes, kept for out-of-distribution tests.

`vas_ros.data.synth` renders the training data. This module draws the same class
definitions (what the actor does over time) in a style that training never sees, so a
model's score here measures how well it holds up when only the look changes:

- the scene is a room: a wallpapered wall above a floor whose tiles recede in perspective,
  lit by a drifting spotlight and a colour cast, with a vignette;
- the actor is a flat, shaded line-art shape (triangle, cross with one long arm, keyhole,
  notched ellipse), drawn from its outline every frame at twice the resolution and shrunk,
  never warped from a sprite;
- the motion eases in and out over a window of 60-100 % of the clip, with ranges that
  differ from the training renderer's (travel 0.18-0.42 of the frame, turns of 45-150
  degrees, size ratios of 1.4-2.3);
- distractors are balls that bounce on parabolic arcs and a pendulum that swings; a static
  pole in front may occlude the actor;
- the camera sways slowly instead of shaking; the sensor adds a gamma, defocus blur,
  signal-dependent noise and JPEG compression.

Nothing in the training recipe may be tuned on it: `vas-ros train` and `vas-ros search`
refuse a data set written by it (see `is_holdout_data`). `none` clips (an actor that
never moves, with the same distractors) are rendered too.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vas_ros.data.motions import CLASSES, written_by
from vas_ros.errors import DataError
from vas_ros.models.spec import BACKGROUND_CLASS

GENERATOR = 'vas_ros.data.holdout'
# The salt of the clip generators' seeds, so that no holdout clip shares its random
# stream with a training clip of the same (seed, split, class, index).
SEED_SALT = 0x4F4F44

_TRAVEL = (0.18, 0.42)
_TURN = (45.0, 150.0)
_SCALE = (1.4, 2.3)
_ACTOR_RADIUS = (0.10, 0.22)
_SUPER = 2  # drawing resolution factor


def _pastel(rng: np.random.Generator, light: tuple[float, float] = (0.45, 0.85)) -> tuple:
    """An RGB colour in [0, 255] from HLS with moderate saturation."""
    hls = np.array([[[rng.uniform(0, 180), rng.uniform(*light) * 255,
                      rng.uniform(0.25, 0.9) * 255]]], np.float32).astype(np.uint8)
    rgb = cv2.cvtColor(hls, cv2.COLOR_HLS2RGB)[0, 0]
    return tuple(float(c) for c in rgb)


def _room(rng: np.random.Generator, side: int) -> np.ndarray:
    """The static scene: wallpaper above a receding tiled floor, float32 [side, side, 3]."""
    canvas = np.zeros((side, side, 3), np.float32)
    horizon = int(side * rng.uniform(0.35, 0.6))
    wall, motif = _pastel(rng), _pastel(rng)
    canvas[:horizon] = wall
    pattern = rng.integers(0, 3)
    step = max(4, int(side * rng.uniform(0.06, 0.14)))
    if pattern == 0:  # vertical stripes
        for x in range(0, side, 2 * step):
            cv2.rectangle(canvas, (x, 0), (x + step // 2, horizon), motif, -1)
    elif pattern == 1:  # dots on a lattice
        for y in range(step // 2, horizon, step):
            for x in range((y // step % 2) * step // 2, side, step):
                cv2.circle(canvas, (x, y), max(1, step // 5), motif, -1, cv2.LINE_AA)
    else:  # wooden panels: horizontal boards with grain lines
        for y in range(0, horizon, step):
            shade = rng.uniform(0.8, 1.1)
            canvas[y:min(y + step, horizon)] = np.asarray(wall, np.float32) * shade
            cv2.line(canvas, (0, y), (side, y), motif, max(1, side // 200))
    tile_a, tile_b = _pastel(rng, (0.2, 0.6)), _pastel(rng, (0.5, 0.9))
    vanish_x = side * rng.uniform(0.3, 0.7)
    rows = int(rng.integers(5, 10))
    columns = int(rng.integers(6, 14))
    for r in range(rows):  # rows get thinner towards the horizon
        y0 = horizon + (side - horizon) * (r / rows) ** 1.6
        y1 = horizon + (side - horizon) * ((r + 1) / rows) ** 1.6
        for c in range(-columns, 2 * columns):
            def at(y, k):
                depth = (y - horizon) / max(1.0, side - horizon)
                return vanish_x + (k / columns * side - vanish_x) * depth
            quad = np.array([[at(y0, c), y0], [at(y0, c + 1), y0],
                             [at(y1, c + 1), y1], [at(y1, c), y1]])
            colour = tile_a if (r + c) % 2 else tile_b
            cv2.fillConvexPoly(canvas, np.round(quad * 8).astype(np.int32), colour,
                               cv2.LINE_AA, shift=3)
    return canvas


def _actor_outline(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A shape with one clear heading, unit radius; returns (outline [N, 2], mark [2])."""
    kind = rng.integers(0, 4)
    if kind == 0:  # isoceles triangle pointing along +x
        base = rng.uniform(0.45, 0.8)
        pts = [(1.0, 0.0), (-0.7, base), (-0.7, -base)]
        mark = (0.45, 0.0)
    elif kind == 1:  # cross with one long arm
        w = rng.uniform(0.16, 0.28)
        short = rng.uniform(0.45, 0.6)
        pts = [(1.0, -w), (1.0, w), (w, w), (w, short), (-w, short), (-w, w), (-short, w),
               (-short, -w), (-w, -w), (-w, -short), (w, -short), (w, -w)]
        mark = (0.8, 0.0)
    elif kind == 2:  # keyhole: a disc with a bar
        angles = np.linspace(0.35, 2 * math.pi - 0.35, 24)
        pts = [(-0.35 + 0.6 * math.cos(a), 0.6 * math.sin(a)) for a in angles]
        pts = [(1.0, 0.16)] + pts + [(1.0, -0.16)]
        mark = (0.75, 0.0)
    else:  # notched ellipse
        ratio = rng.uniform(0.5, 0.75)
        angles = np.linspace(0.25, 2 * math.pi - 0.25, 28)
        pts = [(0.62, 0.0)] + [(math.cos(a), ratio * math.sin(a)) for a in angles]
        mark = (-0.55, 0.0)
    return np.asarray(pts, np.float64), np.asarray(mark, np.float64)


def _ease(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Motion progress per frame, in [-1/2, 1/2]: still, smooth ramp, still again."""
    length = rng.uniform(0.6, 1.0)
    start = rng.uniform(0.0, 1.0 - length)
    t = np.linspace(0.0, 1.0, frames)
    s = np.clip((t - start) / length, 0.0, 1.0)
    return s * s * (3 - 2 * s) - 0.5


def _place(outline: np.ndarray, centre, radius: float, angle_deg: float) -> np.ndarray:
    """Outline in pixels; positive angles turn counter-clockwise on screen (y down)."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    return outline @ rot * radius + np.asarray(centre, np.float64)


def _draw_actor(canvas, outline, mark, centre, radius, angle, fill, edge) -> None:
    pts = _place(outline, centre, radius, angle)
    fixed = np.round(pts * 8).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], fill, cv2.LINE_AA, shift=3)
    shade = tuple(c * 0.7 for c in fill)  # a darker lower half, as if lit from above
    low = pts.copy()
    low[:, 1] = np.maximum(low[:, 1], np.asarray(centre)[1])
    cv2.fillPoly(canvas, [np.round(low * 8).astype(np.int32)], shade, cv2.LINE_AA, shift=3)
    cv2.polylines(canvas, [fixed], True, edge, max(1, int(radius / 12)), cv2.LINE_AA, shift=3)
    spot = _place(mark[None], centre, radius, angle)[0]
    cv2.circle(canvas, tuple(int(v * 8) for v in spot), int(radius * 0.16 * 8), edge, -1,
               cv2.LINE_AA, shift=3)


def render_holdout_clip(label: str, rng: np.random.Generator, size: int = 112,
                        frames: int = 16) -> np.ndarray:
    """One clip of class `label` (a synthetic class or `none`) as uint8 [T, size, size, 3]."""
    if label not in CLASSES and label != BACKGROUND_CLASS:
        raise DataError(f'unknown class {label!r}; classes are {list(CLASSES)} and '
                        f'{BACKGROUND_CLASS!r}')
    if size < 16 or frames < 2:
        raise DataError(f'holdout clips need size >= 16 and frames >= 2, got size={size}, '
                        f'frames={frames}')
    side = size * _SUPER
    room = _room(rng, side)
    outline, mark = _actor_outline(rng)
    fill, edge = _pastel(rng, (0.3, 0.7)), _pastel(rng, (0.05, 0.25))
    progress = _ease(rng, frames)

    radius0 = rng.uniform(*_ACTOR_RADIUS)
    scale = rng.uniform(*_SCALE)
    if label in ('grow', 'shrink'):
        log_r = math.log(radius0) + (1 if label == 'grow' else -1) * math.log(scale) * progress
    else:
        log_r = np.full(frames, math.log(radius0))
    radius = np.exp(log_r) * side
    angle0 = rng.uniform(0, 360)
    turn = rng.uniform(*_TURN)
    angle = np.full(frames, angle0)
    if label == 'rotate_ccw':
        angle = angle0 + turn * progress
    elif label == 'rotate_cw':
        angle = angle0 - turn * progress
    travel = rng.uniform(*_TRAVEL)
    direction = {'move_left': (-1, 0), 'move_right': (1, 0), 'move_up': (0, -1),
                 'move_down': (0, 1)}.get(label, (0, 0))
    box = 0.5 - travel / 2 - 0.08
    centre0 = rng.uniform(0.5 - box, 0.5 + box, 2)
    centre = (centre0[None] + np.outer(progress, direction) * travel) * side

    balls = []
    for _ in range(rng.integers(1, 4)):
        balls.append((rng.uniform(0.1, 0.9) * side, rng.uniform(-0.3, 0.3) * side,
                      rng.uniform(0.15, 0.5) * side, max(2, int(rng.uniform(0.02, 0.05) * side)),
                      _pastel(rng), rng.uniform(0, 1)))
    pendulum = None
    if rng.random() < 0.5:
        pendulum = (rng.uniform(0.1, 0.9) * side, rng.uniform(0.2, 0.45) * side,
                    rng.uniform(0.3, 0.8), rng.uniform(1.0, 3.0), rng.uniform(0, 2 * math.pi))
    pole = None
    if rng.random() < 0.5:
        pole = (int(rng.uniform(0.15, 0.85) * side), int(rng.uniform(0.03, 0.07) * side),
                _pastel(rng, (0.1, 0.4)))

    spot_start = rng.uniform(0.2, 0.8, 2)
    spot_drift = rng.uniform(-0.3, 0.3, 2)
    cast = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    gamma = rng.uniform(0.8, 1.25)
    blur = rng.uniform(0.0, 1.2)
    gain = rng.uniform(0.5, 3.0)
    quality = int(rng.integers(35, 86))
    sway = rng.uniform(0.0, 0.015) * size
    sway_rate = rng.uniform(0.5, 1.5)
    sway_phase = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    vignette = 1.0 - 0.35 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2

    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        phase = t / max(1, frames - 1)
        canvas = room.copy()
        for x0, vx, height, r, colour, offset in balls:
            bounce = abs(math.sin(math.pi * (phase * 2 + offset)))
            pos = (int((x0 + vx * phase) * 8), int((side * 0.95 - height * bounce) * 8))
            cv2.circle(canvas, pos, r * 8, colour, -1, cv2.LINE_AA, shift=3)
        if pendulum is not None:
            px, length, swing, rate, ph = pendulum
            a = swing * math.sin(ph + rate * 2 * math.pi * phase)
            tip = (px + length * math.sin(a), length * math.cos(a))
            cv2.line(canvas, (int(px), 0), (int(tip[0]), int(tip[1])), (40, 40, 40),
                     max(1, side // 120), cv2.LINE_AA)
            cv2.circle(canvas, (int(tip[0]), int(tip[1])), max(2, side // 40), (60, 60, 60),
                       -1, cv2.LINE_AA)
        _draw_actor(canvas, outline, mark, centre[t], radius[t], angle[t], fill, edge)
        if pole is not None:
            x, width, colour = pole
            cv2.rectangle(canvas, (x, 0), (x + width, side), colour, -1)
        frame = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
        dx = sway * math.sin(sway_phase + sway_rate * 2 * math.pi * phase)
        dy = 0.5 * sway * math.cos(sway_phase + sway_rate * 2 * math.pi * phase)
        frame = cv2.warpAffine(frame, np.array([[1, 0, dx], [0, 1, dy]], np.float64),
                               (size, size), borderMode=cv2.BORDER_REPLICATE)
        spot = spot_start + spot_drift * phase
        light = 0.75 + 0.45 * np.exp(-((xx - spot[0]) ** 2 + (yy - spot[1]) ** 2) / 0.08)
        frame = frame * (light * vignette)[..., None] * cast
        frame = 255.0 * (np.clip(frame, 0, 255) / 255.0) ** gamma
        if blur > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        frame = frame + rng.normal(0, 1, frame.shape) * np.sqrt(frame + 1.0) * gain / 4
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        ok, code = cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[t] = cv2.imdecode(code, cv2.IMREAD_UNCHANGED) if ok else frame
    return out


def is_holdout_data(root) -> bool:
    """True when `root` (a data-set folder) was written by this renderer."""
    return written_by(root) == GENERATOR


def refuse_holdout(root, what: str) -> None:
    """DataError when `what` (a training or search command) is pointed at holdout data."""
    if root is not None and not isinstance(root, (tuple, list)) and is_holdout_data(root):
        raise DataError(f'{root}: written by the holdout renderer, which is kept for '
                        f'out-of-distribution evaluation only; {what} must not see it '
                        f'(write training data with vas-ros data synth)')
