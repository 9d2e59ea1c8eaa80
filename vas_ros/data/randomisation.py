"""The domain randomisation factors of `vas_ros.data.synth`, by name.

Kept apart from the renderer so that the command line can list and check them without
loading OpenCV. Each factor that is on is applied to a share of the clips (see
`synth.render_clip_with_truth`); the class is always decided by the actor's motion alone.
"""

from __future__ import annotations

from vas_ros.errors import DataError

FACTORS = (
    'shapes',       # stars and notched ellipses beside the polygon and letter actors
    'objects',      # still objects of the actor's kind elsewhere in the scene
    'backgrounds',  # natural-image (1/f) noise with a gradient instead of a pattern
    'distractors',  # blobs and a spinning bar that move on their own
    'lighting',     # flicker, light that changes over the clip and falls off across it
    'blur',         # defocus
    'noise',        # sensor noise
    'compression',  # JPEG artefacts
    'shake',        # camera jitter
    'ego_motion',   # a camera that pans slowly
    'speed',        # faster and slower motion than the base ranges
    'occlusion',    # a pole or beam in front of the actor
    'mid_motion',   # the motion fills only part of the clip
)


def check_factors(factors) -> frozenset:
    """The factors as a frozenset: a collection of names, or text: a comma list, "all" or
    "none". DataError names the unknown ones."""
    if isinstance(factors, str):
        text = factors.strip()
        if text == 'all':
            return frozenset(FACTORS)
        factors = [] if text in ('', 'none') else [f.strip() for f in text.split(',') if f.strip()]
    try:
        factors = frozenset(factors)
    except TypeError:
        raise DataError(f'factors must be names from {list(FACTORS)}, got {factors!r}') from None
    unknown = sorted(str(f) for f in factors - set(FACTORS))
    if unknown:
        raise DataError(f'unknown randomisation factor(s) {unknown}; factors are '
                        f'{", ".join(FACTORS)} (or all, none)')
    return factors
