"""Reading and writing video files with PyAV (FFmpeg), turning every failure into DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vas_ros.data.transforms import resize_frame
from vas_ros.errors import DataError

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm')
# Encoder per container; all are written and read back by PyAV and OpenCV here. FFmpeg's own
# MPEG-4 Part 2 encoder at fixed quantiser 2 (global_quality = 2 * FF_QP2LAMBDA) gives the
# same bytes on every run; libx264 through PyAV was seen to vary between runs.
_MPEG4 = ('mpeg4', {'flags': '+qscale+bitexact', 'global_quality': '236'})
_ENCODERS = {'.mp4': _MPEG4, '.mkv': _MPEG4, '.avi': _MPEG4,
             '.webm': ('libvpx-vp9', {'crf': '20', 'b': '0', 'deadline': 'good'})}


def write_video(path, frames, fps: float) -> Path:
    """Write uint8 RGB frames [N, H, W, 3] (H and W even) as a video chosen by extension.

    Lossy (yuv420p chroma subsampling plus the codec's quantisation); deterministic for
    the same frames.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise DataError(f'{path}: need uint8 frames [N>0, H, W, 3], got {frames.dtype} '
                        f'{list(frames.shape)}')
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise DataError(f'{path}: width and height must be even for yuv420p, got '
                        f'{width}x{height}')
    suffix = path.suffix.lower()
    if suffix not in _ENCODERS:
        raise DataError(f'{path}: unsupported extension; use one of {VIDEO_EXTENSIONS}')
    codec, options = _ENCODERS[suffix]
    if fps <= 0:
        raise DataError(f'{path}: fps must be > 0, got {fps}')
    path.parent.mkdir(parents=True, exist_ok=True)
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    tmp = path.with_name(f'.{path.stem}.partial{path.suffix}')
    try:
        with av.open(str(tmp), 'w') as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
            stream.options = dict(options)
            stream.thread_count = 1  # the same bytes on every machine
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(frame, format='rgb24')
                picture.pts = index
                container.mux(stream.encode(picture))
            container.mux(stream.encode())
        tmp.replace(path)
    except (av.FFmpegError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f'{path}: could not write video: {exc}') from None
    return path


def read_video(path, start_s: float | None = None, end_s: float | None = None,
               size: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video to uint8 RGB [N, H, W, 3] and its frame rate.

    With start_s/end_s only frames whose timestamps lie in [start_s, end_s) are kept. With
    `size` each frame is resized to size x size as it is decoded (`resize_frame`), so a
    long 1080p file costs its frames at `size`, not at full resolution.
    A missing, unreadable, video-less or empty file raises DataError naming the file.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: video file not found')
    if path.stat().st_size == 0:
        raise DataError(f'{path}: video file is empty (0 bytes)')
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f'{path}: has no video stream')
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
            if start_s and start_s > 0 and stream.time_base:
                container.seek(int(start_s / stream.time_base), stream=stream,
                               backward=True, any_frame=False)
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else len(frames) / fps
                if start_s is not None and t < start_s - 1e-6:
                    continue
                if end_s is not None and t >= end_s - 1e-6:
                    break
                rgb = frame.to_ndarray(format='rgb24')
                frames.append(rgb if size is None else resize_frame(rgb, size))
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f'{path}: cannot decode video: {exc}') from None
    if not frames:
        span = '' if start_s is None and end_s is None else f' in [{start_s}, {end_s}) s'
        raise DataError(f'{path}: video has no frames{span}')
    return np.stack(frames), fps


def probe_video(path) -> dict:
    """Cheap check that a file opens as a video and decodes one frame; DataError if not."""
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f'{path}: video file not found')
    if path.stat().st_size == 0:
        raise DataError(f'{path}: video file is empty (0 bytes)')
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f'{path}: has no video stream')
            stream = container.streams.video[0]
            duration = None
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            for frame in container.decode(stream):
                return {'width': frame.width, 'height': frame.height,
                        'fps': float(stream.average_rate or 0) or None,
                        'frames': int(stream.frames) or None, 'duration_s': duration}
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f'{path}: cannot decode video: {exc}') from None
    raise DataError(f'{path}: video has no frames')
