"""Data set readers on real files: folder of MP4s, clip-list CSV, rosbag2 (sqlite3 + MCAP)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vas_ros.data.datasets import ClipDataset, list_classes, open_dataset
from vas_ros.data.rosbag_source import RosbagSource, image_msg_to_rgb, read_bag_frames
from vas_ros.data.sampling import clip_indices
from vas_ros.data.synth import CLASSES, clip_rng, render_clip, write_synthetic_dataset
from vas_ros.data.video_io import read_video, write_video
from vas_ros.errors import DataError
from vas_ros.models.spec import InputSpec

SPEC = InputSpec(frames=4, size=32, frame_stride=2, streams=('rgb', 'flow'))


@pytest.fixture(scope='module')
def synth_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('synth') / 'ds', per_class=1, seed=1,
                                   size=32, frames=10, progress=False)


def test_folder_dataset_items_and_classes(synth_root):
    assert list_classes(synth_root) == list(CLASSES)
    data = open_dataset(synth_root, 'val', SPEC)
    assert isinstance(data, ClipDataset) and len(data) == 8 and data.skipped == 0
    assert data.classes == list(CLASSES)
    inputs, label = data[3]
    assert label == 3 and data.records[3].label == CLASSES[3]
    assert inputs['rgb'].shape == (3, 4, 32, 32) and inputs['flow'].shape == (2, 4, 32, 32)
    assert inputs['rgb'].dtype == torch.float32 and inputs['flow'].abs().max() <= 1
    again, _ = data[3]
    assert torch.equal(inputs['rgb'], again['rgb'])  # evaluation clips are deterministic
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert batch[0]['rgb'].shape == (4, 3, 4, 32, 32) and batch[1].tolist() == [0, 1, 2, 3]


def test_training_clips_take_random_offsets_and_vary_per_epoch(synth_root):
    spec = InputSpec(frames=3, size=32)  # 3 of the 10 frames: 8 possible offsets
    data = open_dataset(synth_root, 'train', spec, train=True, seed=5)
    firsts = {data[0][0]['rgb'][:, 0].sum().item() for _ in range(12)}
    assert len(firsts) > 2
    data.set_epoch(1)
    replay = open_dataset(synth_root, 'train', spec, train=True, seed=5)
    replay.set_epoch(1)
    assert torch.equal(data[2][0]['rgb'], replay[2][0]['rgb'])  # seeded: reproducible


def test_clip_indices_train_random_eval_centred_short_videos_padded():
    assert clip_indices(10, 3, 2, train=False).tolist() == [2, 4, 6]
    rng = np.random.default_rng(0)
    starts = {int(clip_indices(10, 3, 2, train=True, rng=rng)[0]) for _ in range(50)}
    assert starts == set(range(6))
    assert clip_indices(3, 4, 2).tolist() == [0, 2, 2, 2]


def test_csv_dataset_with_relative_paths_spans_and_bad_rows(tmp_path, synth_root):
    long_clip = np.concatenate([render_clip('move_left', clip_rng(0, 'x', 'move_left', 0),
                                            size=32, frames=10),
                                render_clip('grow', clip_rng(0, 'x', 'grow', 0), size=32,
                                            frames=10)])
    write_video(tmp_path / 'videos' / 'long.mp4', long_clip, 10)  # 2 s: left then grow
    rows = ['path,label,split,start_s,end_s',
            'videos/long.mp4,move_left,train,0,1.0',
            'videos/long.mp4,grow,train,1.0,2.0',
            f'{synth_root}/val/shrink/shrink_0000.mp4,shrink,val,,',
            'videos/long.mp4,grow,train,1.5,1.0',     # end before start
            'videos/long.mp4,grow,train,abc,1.0',     # not a number
            'videos/missing.mp4,grow,train,,',        # no such file
            ',grow,train,,']                          # empty path
    csv_path = tmp_path / 'labels.csv'
    csv_path.write_text('\n'.join(rows) + '\n')
    assert list_classes(csv_path) == ['grow', 'move_left']
    with pytest.warns(UserWarning, match='skipped 4'):
        data = open_dataset(csv_path, 'train', SPEC, cache_dir=tmp_path / 'cache')
    assert len(data) == 2 and data.skipped == 4
    assert any('line 5' in r and 'not after' in r for r in data.skip_reasons)
    assert any('line 6' in r and 'not a number' in r for r in data.skip_reasons)
    assert any('missing.mp4' in r for r in data.skip_reasons)
    first, second = data.frames(0), data.frames(1)
    assert first.shape == (10, 32, 32, 3) and second.shape == (10, 32, 32, 3)
    decoded, _ = read_video(tmp_path / 'videos' / 'long.mp4')
    assert np.array_equal(first, decoded[:10]) and np.array_equal(second, decoded[10:])
    # the val row's label 'shrink' is not among train's classes: nothing usable is left
    with pytest.raises(DataError, match="label 'shrink' is not in the class list"):
        open_dataset(csv_path, 'val', SPEC)
    fixed = open_dataset(csv_path, 'val', SPEC, classes=list(CLASSES))
    assert len(fixed) == 1 and fixed.labels == [CLASSES.index('shrink')]


def _image_msg(types, frame, encoding, pad, stamp_ns):
    """A sensor_msgs/Image of an RGB frame in `encoding`, rows padded by `pad` bytes."""
    if encoding == 'rgb8':
        pixels = frame
    elif encoding == 'bgr8':
        pixels = frame[..., ::-1]
    elif encoding == 'rgba8':
        pixels = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
    elif encoding == 'bgra8':
        pixels = np.dstack([frame[..., ::-1], np.full(frame.shape[:2], 7, np.uint8)])
    else:
        pixels = frame[..., :1]
    height, width = frame.shape[:2]
    rows = pixels.reshape(height, -1)
    step = rows.shape[1] + pad
    data = np.zeros((height, step), np.uint8)
    data[:, :rows.shape[1]] = rows
    data[:, rows.shape[1]:] = 99  # padding bytes that must be ignored
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                     nanosec=stamp_ns % 10**9),
        frame_id='camera')
    return types['sensor_msgs/msg/Image'](header=header, height=height, width=width,
                                          encoding=encoding, is_bigendian=0, step=step,
                                          data=data.reshape(-1))


def _write_bag(path, frames, storage, encoding='rgb8', pad=0, fps=10.0, extra_topic=True):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    t0 = 1_700_000_000 * 10**9
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        image = writer.add_connection('/camera/image_raw', 'sensor_msgs/msg/Image',
                                      typestore=store)
        jpeg = writer.add_connection('/camera/image_raw/compressed',
                                     'sensor_msgs/msg/CompressedImage', typestore=store)
        if extra_topic:
            text = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
            writer.write(text, t0, store.serialize_cdr(types['std_msgs/msg/String'](data='hi'),
                                                       'std_msgs/msg/String'))
        for i, frame in enumerate(frames):
            stamp = t0 + int(i * 1e9 / fps)
            msg = _image_msg(types, frame, encoding, pad, stamp)
            writer.write(image, stamp, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
            ok, png = cv2.imencode('.png', frame[..., ::-1])
            compressed = types['sensor_msgs/msg/CompressedImage'](header=msg.header,
                                                                   format='png',
                                                                   data=png.reshape(-1))
            writer.write(jpeg, stamp, store.serialize_cdr(
                compressed, 'sensor_msgs/msg/CompressedImage'))
    return path


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_rosbag_dataset_from_labelled_spans(tmp_path, storage):
    left = render_clip('move_left', clip_rng(2, 'b', 'move_left', 0), size=32, frames=10)
    up = render_clip('move_up', clip_rng(2, 'b', 'move_up', 0), size=32, frames=10)
    frames = np.concatenate([left, up])  # 2 s at 10 fps
    bag = _write_bag(tmp_path / 'run1', frames, storage, encoding='rgb8', pad=5)
    (bag / 'labels.csv').write_text('label,start_s,end_s,split,topic\n'
                                    'move_left,0,1.0,train,/camera/image_raw\n'
                                    'move_up,1.0,2.0,train,/camera/image_raw\n'
                                    'move_up,1.0,2.0,val,/camera/image_raw/compressed\n'
                                    'move_left,5.0,6.0,train,/camera/image_raw\n')  # past end
    assert list_classes(bag) == ['move_left', 'move_up']
    with pytest.warns(UserWarning, match='skipped 1'):
        data = open_dataset(bag, 'train', SPEC, cache_dir=tmp_path / 'cache')
    assert len(data) == 2 and data.skipped == 1 and 'no images' in data.skip_reasons[0]
    # raw Image with padded rows decodes exactly (lossless), spans split where labelled
    assert np.array_equal(read_bag_frames(bag, '/camera/image_raw', 0, 1.0)[0], left)
    assert data.labels == [0, 1]
    assert np.array_equal(data.frames(1), up)
    # relabelling (a new labels.csv) keeps the decoded spans: cache hits, no decoding
    with (bag / 'labels.csv').open('a') as handle:
        handle.write('move_up,1.5,2.0,test,/camera/image_raw\n')
    with pytest.warns(UserWarning, match='skipped 1'):
        relabelled = open_dataset(bag, 'train', SPEC, cache_dir=tmp_path / 'cache')
    relabelled.frames(1)
    assert relabelled.cache.hits == 1 and relabelled.cache.misses == 0
    inputs, label = data[0]
    assert inputs['rgb'].shape == (3, 4, 32, 32) and label == 0
    val = open_dataset(bag, 'val', SPEC)
    assert np.array_equal(val.frames(0), up)  # PNG CompressedImage is lossless too
    # the same spans through an explicit RosbagSource (labels file anywhere)
    moved = tmp_path / 'spans.csv'
    moved.write_text((bag / 'labels.csv').read_text())
    source = RosbagSource(bag, moved, topic='/camera/image_raw')
    assert len(open_dataset(source, 'val', SPEC)) == 1
    # and a clip-list CSV row may point at the bag, next to ordinary videos
    clip_list = tmp_path / 'mixed.csv'
    clip_list.write_text('path,label,split,start_s,end_s,topic\n'
                         f'{bag.name},move_up,train,1.0,2.0,/camera/image_raw\n')
    mixed = open_dataset(clip_list, 'train', SPEC)
    assert mixed.records[0].kind == 'bag' and np.array_equal(mixed.frames(0), up)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'])
def test_image_encodings_and_step_padding(encoding):
    from rosbags.typesys import Stores, get_typestore

    types = get_typestore(Stores.ROS2_JAZZY).types
    frame = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = _image_msg(types, frame, encoding, pad=3, stamp_ns=0)
    rgb = image_msg_to_rgb(msg)
    expected = np.repeat(frame[..., :1], 3, axis=2) if encoding == 'mono8' else frame
    assert rgb.shape == (5, 7, 3) and np.array_equal(rgb, expected)


def test_cache_hit_and_invalidation(tmp_path, synth_root):
    cache = tmp_path / 'cache'
    first = open_dataset(synth_root, 'train', SPEC, cache_dir=cache)
    assert not first.is_cached(0)
    frames = first.frames(0)
    assert first.cache.misses == 1 and first.cache.hits == 0 and first.is_cached(0)
    second = open_dataset(synth_root, 'train', SPEC, cache_dir=cache)
    assert np.array_equal(second.frames(0), frames)
    assert second.cache.hits == 1 and second.cache.misses == 0
    assert len(list(cache.rglob('*.npy'))) == 1
    # another frame size is another entry
    small = open_dataset(synth_root, 'train', InputSpec(frames=4, size=16), cache_dir=cache)
    assert small.frames(0).shape == (10, 16, 16, 3) and small.cache.misses == 1
    # replacing the video changes its key: decoded again, not served stale
    copy = tmp_path / 'copy'
    write_synthetic_dataset(copy, per_class=1, seed=1, size=32, frames=10, progress=False)
    data = open_dataset(copy, 'train', SPEC, cache_dir=cache)
    data.frames(0)
    target = data.records[0].path
    write_video(target, render_clip('grow', clip_rng(9, 'z', 'grow', 0), size=32, frames=6), 10)
    fresh = open_dataset(copy, 'train', SPEC, cache_dir=cache)
    assert fresh.frames(0).shape[0] == 6 and fresh.cache.misses == 1


def test_every_container_extension_is_read(tmp_path):
    clip = render_clip('rotate_cw', clip_rng(6, 'ext', 'rotate_cw', 0), size=32, frames=6)
    for ext in ('.mp4', '.avi', '.mkv', '.webm'):
        write_video(tmp_path / 'ds' / 'train' / 'rotate_cw' / f'clip{ext}', clip, 12)
    (tmp_path / 'ds' / 'train' / 'rotate_cw' / 'notes.txt').write_text('ignored')
    data = open_dataset(tmp_path / 'ds', 'train', InputSpec(frames=6, size=32))
    assert sorted(r.path.suffix for r in data.records) == ['.avi', '.mkv', '.mp4', '.webm']
    def grey(frames):  # 4:2:0 chroma at 32 px is coarse: compare brightness
        return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(int)

    for index in range(len(data)):
        frames = data.frames(index)
        assert frames.shape == (6, 32, 32, 3)
        assert np.abs(grey(frames) - grey(clip)).mean() < 5  # lossy, but the same picture
