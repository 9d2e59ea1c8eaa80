"""Bad input: one clear DataError naming the file and problem, or a counted skip."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from vas_ros.cli import main
from vas_ros.data.datasets import DataWarning, list_classes, open_dataset
from vas_ros.data.rosbag_source import RosbagSource, image_msg_to_rgb
from vas_ros.data.synth import write_synthetic_dataset
from vas_ros.data.video_io import probe_video, read_video, write_video
from vas_ros.errors import DataError
from vas_ros.models.spec import InputSpec

SPEC = InputSpec(frames=4, size=32)


@pytest.fixture(scope='module')
def synth_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('bad') / 'ds', per_class=1, seed=2,
                                   size=32, frames=6, progress=False)


@pytest.fixture
def root(tmp_path, synth_root):
    copy = tmp_path / 'ds'
    shutil.copytree(synth_root, copy)
    return copy


def test_missing_source_split_and_empty_split(tmp_path, root):
    with pytest.raises(DataError, match='data source not found'):
        open_dataset(tmp_path / 'nope', 'train', SPEC)
    with pytest.raises(DataError, match=r"no 'test' split folder \(found: \['train', 'val'\]\)"):
        open_dataset(root, 'test', SPEC)
    for clip in (root / 'val').rglob('*.mp4'):
        clip.unlink()
    with pytest.raises(DataError, match=r'ds/val: no videos'):
        open_dataset(root, 'val', SPEC)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='empty data set folder'):
        list_classes(tmp_path / 'empty')


def test_unreadable_and_zero_length_videos_are_skipped_and_counted(root):
    (root / 'train' / 'grow' / 'empty.mp4').write_bytes(b'')
    (root / 'train' / 'shrink' / 'garbage.mp4').write_bytes(b'not a video at all' * 50)
    with pytest.warns(DataWarning, match='skipped 2 of 10 clips'):
        data = open_dataset(root, 'train', SPEC)
    assert len(data) == 8 and data.skipped == 2
    reasons = ' '.join(data.skip_reasons)
    assert 'empty.mp4: video file is empty (0 bytes)' in reasons
    assert 'garbage.mp4: cannot decode video' in reasons
    with pytest.raises(DataError, match='empty.mp4: video file is empty'):
        read_video(root / 'train' / 'grow' / 'empty.mp4')
    with pytest.raises(DataError, match='garbage.mp4: cannot decode'):
        probe_video(root / 'train' / 'shrink' / 'garbage.mp4')
    with pytest.raises(DataError, match='missing.mp4: video file not found'):
        read_video(root / 'missing.mp4')
    with pytest.raises(DataError, match=r'no frames in \[50.0, 60.0\) s'):
        read_video(root / 'train' / 'grow' / 'grow_0000.mp4', 50.0, 60.0)


def test_nothing_usable_is_an_error_not_an_empty_dataset(root):
    for clip in (root / 'val').rglob('*.mp4'):
        clip.write_bytes(b'')
    with pytest.raises(DataError, match=r"split 'val'|val: no usable clips \(8 skipped"):
        open_dataset(root, 'val', SPEC)


def test_class_folder_not_in_train_is_skipped(root):
    extra = root / 'val' / 'jump'
    extra.mkdir()
    shutil.copy(root / 'val' / 'grow' / 'grow_0000.mp4', extra / 'jump_0000.mp4')
    with pytest.warns(DataWarning, match="label 'jump' is not in the class list"):
        data = open_dataset(root, 'val', SPEC)
    assert len(data) == 8 and data.skipped == 1 and 'jump' not in data.classes


def test_bad_csv_files(tmp_path, root):
    bad_header = tmp_path / 'bad.csv'
    bad_header.write_text('file,class\na.mp4,grow\n')
    with pytest.raises(DataError, match=r'bad.csv: header \[.file., .class.\] is neither'):
        open_dataset(bad_header, 'train', SPEC)
    empty = tmp_path / 'empty.csv'
    empty.write_text('')
    with pytest.raises(DataError, match='empty.csv: label CSV is empty'):
        open_dataset(empty, 'train', SPEC)
    spans = tmp_path / 'spans.csv'
    spans.write_text('label,start_s,end_s\ngrow,0,1\n')
    with pytest.raises(DataError, match='spans.csv: is a bag span list'):
        open_dataset(spans, 'train', SPEC)
    all_bad = tmp_path / 'all_bad.csv'
    all_bad.write_text('path,label,split\nnope.mp4,grow,train\n'
                       f'{root}/train/grow/grow_0000.mp4,,train\n')
    with pytest.raises(DataError, match=r'no usable rows to take classes from \(2 bad; first: '
                                        r'.*line 2: .*nope.mp4 does not exist'):
        open_dataset(all_bad, 'train', SPEC)
    with all_bad.open('a') as handle:
        handle.write(f'{root}/val/grow/grow_0000.mp4,grow,val\n')
    with pytest.raises(DataError, match=r'no usable clips \(2 skipped: .*line 2: .*nope.mp4 '
                                        r'does not exist.*line 3: empty label'):
        open_dataset(all_bad, 'train', SPEC)
    assert len(open_dataset(all_bad, 'val', SPEC)) == 1
    no_split = tmp_path / 'only_train.csv'
    no_split.write_text(f'path,label,split\n{root}/train/grow/grow_0000.mp4,grow,train\n')
    with pytest.raises(DataError, match=r"split 'val': no clips \(splits present: \['train'\]"):
        open_dataset(no_split, 'val', SPEC)


def test_a_span_past_its_video_and_non_finite_times_skip_only_their_row(tmp_path, root):
    # The synthetic clips last 6 frames at 15 fps (0.4 s).
    video = root / 'train' / 'grow' / 'grow_0000.mp4'
    listing = tmp_path / 'spans.csv'
    listing.write_text('path,label,split,start_s,end_s\n'
                       f'{video},grow,train,0.0,0.4\n'
                       f'{video},grow,train,30.0,31.0\n'
                       f'{video},grow,train,nan,0.3\n'
                       f'{video},grow,train,0.0,inf\n')
    with pytest.warns(DataWarning, match='skipped 3 of 4 clips'):
        data = open_dataset(listing, 'train', SPEC)
    assert len(data) == 1 and data.frames(0).shape[1:] == (32, 32, 3)
    reasons = '\n'.join(data.skip_reasons)
    assert 'spans.csv line 3: span [30.0, 31.0) s starts after the end of' in reasons
    assert "spans.csv line 4: start_s 'nan' is not a finite number" in reasons
    assert "spans.csv line 5: end_s 'inf' is not a finite number" in reasons


def test_decoding_resizes_frame_by_frame(root):
    from vas_ros.data.transforms import resize_frames

    video = root / 'train' / 'grow' / 'grow_0000.mp4'
    full, _ = read_video(video)
    small, _ = read_video(video, size=16)
    assert small.shape == (len(full), 16, 16, 3)
    assert np.array_equal(small, resize_frames(full, 16))


def _bag_with_one_image(path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    msg = types['sensor_msgs/msg/Image'](
        header=types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](
            sec=1, nanosec=0), frame_id='cam'),
        height=4, width=4, encoding='rgb8', is_bigendian=0, step=12,
        data=np.zeros(48, np.uint8))
    with Writer(path, version=9) as writer:
        conn = writer.add_connection('/cam/image', 'sensor_msgs/msg/Image', typestore=store)
        writer.write(conn, 10**9, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
    return path


def test_bag_without_the_topic_or_labels(tmp_path):
    bag = _bag_with_one_image(tmp_path / 'bag')
    with pytest.raises(DataError, match=r'bag: a rosbag2 needs labelled spans in .*labels.csv'):
        open_dataset(bag, 'train', SPEC)
    (bag / 'labels.csv').write_text('label,start_s,end_s,split,topic\n'
                                    'grow,0,1,train,/front/image\n')
    with pytest.raises(DataError, match=r"bag: has no topic '/front/image'; its image topics "
                                        r"are \['/cam/image'\]"):
        open_dataset(bag, 'train', SPEC)
    spans = tmp_path / 'spans.csv'
    spans.write_text('label,start_s,end_s\ngrow,0,1\n')
    with pytest.raises(DataError, match="has no topic '/nope'"):
        open_dataset(RosbagSource(bag, spans, topic='/nope'), 'train', SPEC)
    assert len(open_dataset(RosbagSource(bag, spans), 'train', SPEC)) == 1  # the only topic
    not_a_bag = tmp_path / 'dir'
    not_a_bag.mkdir()
    with pytest.raises(DataError, match='not a rosbag2'):
        open_dataset(RosbagSource(not_a_bag, spans), 'train', SPEC)


def test_bad_image_messages():
    msg = SimpleNamespace(encoding='rgb8', height=4, width=4, step=12, is_bigendian=0,
                          data=np.zeros(20, np.uint8))
    with pytest.raises(DataError, match='^cam: rgb8 4x4 with step 12 needs 48 bytes, got 20'):
        image_msg_to_rgb(msg, 'cam')
    msg.encoding, msg.data = 'bayer_rgbg8', np.zeros(48, np.uint8)
    with pytest.raises(DataError, match="unsupported image encoding 'bayer_rgbg8'"):
        image_msg_to_rgb(msg)
    broken = SimpleNamespace(format='jpeg', data=np.frombuffer(b'\xff\xd8garbage', np.uint8))
    with pytest.raises(DataError, match='could not decode'):
        image_msg_to_rgb(broken)


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(DataError, match='must be even'):
        write_video(tmp_path / 'odd.mp4', np.zeros((2, 31, 32, 3), np.uint8), 10)
    with pytest.raises(DataError, match='need uint8 frames'):
        write_video(tmp_path / 'f.mp4', np.zeros((2, 32, 32, 3), np.float32), 10)
    with pytest.raises(DataError, match='unsupported extension'):
        write_video(tmp_path / 'f.gif', np.zeros((2, 32, 32, 3), np.uint8), 10)


def test_cli_synth_info_bench_and_one_line_errors(tmp_path, capsys):
    out = tmp_path / 'cli_ds'
    assert main(['data', 'synth', str(out), '--per-class', '1', '--seed', '3', '--size', '32',
                 '--frames', '6', '--splits', 'train', '--no-progress']) == 0
    assert len(list(out.rglob('*.mp4'))) == 8
    capsys.readouterr()
    assert main(['data', 'info', str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['splits']['train']['clips'] == 8 and info['splits']['train']['skipped'] == 0
    assert main(['data', 'bench', str(out), '--size', '32', '--frames', '4', '--limit', '3',
                 '--flow-repeats', '2']) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench['decode']['clips'] == 3 and bench['decode']['cached']['clips_per_s'] > 0
    assert set(bench['flow_ms_per_pair']) == {'112x112', '320x240'}
    assert set(bench['flow_ms_per_pair']['320x240']) == {'dis', 'dis_fast', 'dis_medium',
                                                         'farneback'}
    assert main(['data', 'info', str(tmp_path / 'missing')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'missing: data source not found' in err[0]
    assert main(['data', 'synth', str(tmp_path / 'x'), '--per-class', '1', '--size', '33']) == 2
    assert '--size must be even' in capsys.readouterr().err
    assert main(['data', 'preview', str(out), '--out', str(tmp_path / 'p.png'), '--size', '32',
                 '--frames', '6']) == 0
    assert (tmp_path / 'p.png').stat().st_size > 1000
