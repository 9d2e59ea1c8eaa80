"""TensorFlow SAME padding: the one rule every SAME conv and pool in `layers` follows.

SAME gives a stride-s layer ceil(n / s) output positions; when the padding is odd the
extra row goes after the data. PyTorch layers pad only symmetrically, so each layer asks
`symmetric_padding` once: when SAME is symmetric it is the layer's own padding, otherwise
the layer pads explicitly by `same_pads` (at build time for a known input size, in
forward from the input's shape when the size is only known then).
"""

from __future__ import annotations


def same_output(size: int, stride: int) -> int:
    """Positions a SAME-padded layer with this stride produces from `size` inputs."""
    return -(-int(size) // int(stride))


def same_padding(size: int, kernel: int, stride: int, crop: bool = False) -> tuple[int, int]:
    """(before, after) padding that makes a layer SAME: ceil(size / stride) outputs.

    `crop=True` lets `after` go negative to crop a trailing remainder that no strided
    window reaches, so the padded length is exactly what the windows cover. Strided 3-D
    convs pad this way rather than through the conv's own `padding`: on CPU, oneDNN's
    conv3d backward with stride > 1 and a padding the windows do not fully use returns
    NaN weight gradients and can corrupt memory (seen with torch 2.14, e.g. T=8,
    kernel 11, stride 2, padding 5).
    """
    size, kernel, stride = int(size), int(kernel), int(stride)
    needed = (same_output(size, stride) - 1) * stride + kernel - size
    total = max(needed, 0)
    before, after = total // 2, total - total // 2
    if crop:
        after = min(after, needed)
    return before, after


def same_pads(sizes, kernel, stride, crop: bool = False) -> list[int]:
    """`F.pad` amounts (last dim first, as F.pad and ZeroPad2d want) for the trailing dims.

    `sizes`, `kernel` and `stride` list the same dims in order, e.g. (H, W) or (T, H, W).
    """
    pads: list[int] = []
    for size, k, s in zip(reversed(tuple(sizes)), reversed(tuple(kernel)),
                          reversed(tuple(stride))):
        pads.extend(same_padding(size, k, s, crop))
    return pads


def causal_pads(sizes, kernel, stride) -> list[int]:
    """`same_pads` (cropped) with the time dim's padding moved before the data: sizes are
    (T, ...) and the last window in time ends on the last frame, so no output sees a later
    frame. A negative amount crops leading frames no window reaches (kernel < stride)."""
    pads = same_pads(sizes, kernel, stride, crop=True)
    t, k, s = int(tuple(sizes)[0]), int(tuple(kernel)[0]), int(tuple(stride)[0])
    pads[-2:] = [(same_output(t, s) - 1) * s + k - t, 0]
    return pads


def symmetric_padding(kernel, stride, sizes=None) -> tuple[int, ...] | None:
    """The layer's own padding when SAME is symmetric in every dim, else None (pad explicitly).

    With `sizes=None` the input size is not known yet, and the answer must hold for every
    size: only odd kernels at stride 1 (padding k // 2) qualify.
    """
    kernel, stride = tuple(int(k) for k in kernel), tuple(int(s) for s in stride)
    if sizes is None:
        if all(k % 2 == 1 for k in kernel) and all(s == 1 for s in stride):
            return tuple(k // 2 for k in kernel)
        return None
    amounts = [same_padding(n, k, s) for n, k, s in zip(sizes, kernel, stride)]
    if all(before == after for before, after in amounts):
        return tuple(before for before, _ in amounts)
    return None
