"""Careless-user input to the `vas-ros` command: each case is one line on stderr, exit code
2, before any work is done, and nothing the user had is changed."""

from __future__ import annotations

import pytest

from vas_ros.cli import main

UNWRITABLE = '/proc/vas_ros_no_such/out'  # nothing can be created under /proc, even as root


def refused(capsys, argv, *needles) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_export_over_its_own_checkpoint_is_refused_and_the_file_kept(tmp_path, capsys):
    ckpt = tmp_path / 'model.safetensors'
    ckpt.write_bytes(b'not even a checkpoint, but it is the user\'s file')
    before = ckpt.read_bytes()
    for out in (ckpt, tmp_path / '.' / 'model.safetensors'):
        refused(capsys, ['export', str(ckpt), '--format', 'torchscript', '--out', str(out)],
                '--out', 'is the input')
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize('argv_for', [
    lambda t: ['train', '--model', 'tvn_tiny', '--data', str(t / 'data'), '--out',
               str(t / 'file.txt' / 'run')],
    lambda t: ['train', '--model', 'tvn_tiny', '--data', str(t / 'data'), '--out',
               str(t / 'run'), '--cache-dir', UNWRITABLE],
    lambda t: ['train', '--model', 'tvn_tiny', '--data', str(t / 'data'), '--out',
               str(t / 'data')],
    lambda t: ['eval', str(t / 'model.safetensors'), '--data', str(t / 'data'),
               '--confusion-png', str(t)],
    lambda t: ['eval', str(t / 'model.safetensors'), '--data', str(t / 'data'),
               '--confusion-png', UNWRITABLE + '.png'],
    lambda t: ['latency', 'tvn_tiny', '--plot', UNWRITABLE + '.png'],
    lambda t: ['data', 'synth', str(t / 'file.txt'), '--per-class', '1'],
    lambda t: ['data', 'synth', UNWRITABLE, '--per-class', '1'],
    lambda t: ['data', 'preview', str(t / 'data'), '--out', str(t)],
    lambda t: ['ensemble', '--from-store', str(t / 's.db'), '--data', str(t / 'data'),
               '--out', UNWRITABLE],
    lambda t: ['search', 'tvn', '--data', str(t / 'data'), '--latency-budget-ms', '10',
               '--store', '', '--out', str(t / 'o')],
    lambda t: ['search', 'tvn', '--data', str(t / 'data'), '--latency-budget-ms', '10',
               '--store', str(t / 's.db'), '--out', str(t / 'o'), '--progress-jsonl',
               str(t / 'file.txt' / 'p.jsonl')],
], ids=['train-out-under-a-file', 'train-cache-unwritable', 'train-out-is-the-data',
        'eval-png-is-a-folder', 'eval-png-unwritable', 'latency-plot-unwritable',
        'synth-out-is-a-file', 'synth-out-unwritable', 'preview-out-is-a-folder',
        'ensemble-out-unwritable', 'search-store-empty', 'search-jsonl-under-a-file'])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys,
                                                                    argv_for):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'file.txt').write_text('keep me')
    (tmp_path / 'model.safetensors').write_bytes(b'x')
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*'))
    refused(capsys, argv_for(tmp_path))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob('*')) == listing
    assert (tmp_path / 'file.txt').read_text() == 'keep me'


# ------------------------------------------------------------------- checkpoint metadata
FRAME2D = {'family': 'baseline', 'name': 'frame2d_tiny',
           'genome': {'arch': 'frame2d', 'frames': 4, 'size': 32}}


@pytest.fixture(scope='module')
def good_checkpoint(tmp_path_factory):
    from vas_ros.models.checkpoint import save_checkpoint
    from vas_ros.models.factory import resolve_arch

    arch = resolve_arch(FRAME2D)
    path = tmp_path_factory.mktemp('ckpt') / 'model.safetensors'
    save_checkpoint(path, arch.build(3), arch, ['a', 'b', 'c'], arch.input_spec())
    return path


def _with_metadata(src, dst, edit):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework='pt') as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        meta = json.loads(handle.metadata()['vas_ros'])
    meta = edit(meta)
    save_file(tensors, str(dst), metadata={'vas_ros': json.dumps(meta)})
    return dst


def _set(path, value):
    def edit(meta):
        *parents, last = path
        here = meta
        for key in parents:
            here = here[key]
        here[last] = value
        return meta
    return edit


@pytest.mark.parametrize('edit, needle', [
    (_set(('input', 'frames'), 16), 'disagrees with its genome'),
    (_set(('input', 'size'), 4096), 'input.size'),
    (_set(('input', 'frames'), 'abc'), 'input.frames'),
    (_set(('input', 'frames'), 8.5), 'input.frames'),
    (_set(('input', 'frames'), True), 'input.frames'),
    (_set(('input', 'mean'), 'abc'), 'input.mean'),
    (_set(('input', 'mean'), [0.4, 0.4, float('nan')]), 'input.mean'),
    (_set(('input', 'streams'), 'rgb'), 'input.streams'),
    (_set(('input',), [1, 2]), "'input' must be a JSON object"),
    (_set(('arch', 'genome'), 'frame2d'), 'valid model'),
    (_set(('arch',), 'frame2d'), "'arch' must be a JSON object"),
    (_set(('classes',), [1, 2, 3]), 'list of names'),
    (lambda meta: [meta], 'must be a JSON object, got list'),
], ids=['frames-vs-genome', 'size-4096', 'frames-str', 'frames-float', 'frames-bool',
        'mean-str', 'mean-nan', 'streams-str', 'input-list', 'genome-str', 'arch-str',
        'classes-ints', 'metadata-list'])
def test_checkpoint_metadata_that_lies_is_refused(good_checkpoint, tmp_path, capsys, edit,
                                                  needle):
    from vas_ros.errors import CheckpointError
    from vas_ros.models.checkpoint import load_checkpoint

    load_checkpoint(good_checkpoint)  # the untouched file loads
    bad = _with_metadata(good_checkpoint, tmp_path / 'bad.safetensors', edit)
    with pytest.raises(CheckpointError, match='bad.safetensors') as info:
        load_checkpoint(bad)
    assert needle in str(info.value)
    refused(capsys, ['export', str(bad), '--format', 'onnx', '--out', str(tmp_path / 'x.onnx')],
            'bad.safetensors')
    assert not (tmp_path / 'x.onnx').exists()


def test_a_checkpoint_with_nan_weights_is_refused_by_name(good_checkpoint, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from vas_ros.errors import CheckpointError
    from vas_ros.models.checkpoint import load_checkpoint

    with safe_open(str(good_checkpoint), framework='pt') as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    name = sorted(k for k in tensors if tensors[k].is_floating_point())[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float('nan')
    bad = tmp_path / 'nan.safetensors'
    save_file(tensors, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match=f'NaN or infinite values .first: {name}'):
        load_checkpoint(bad)
    refused(capsys, ['export', str(bad), '--format', 'onnx', '--out', str(tmp_path / 'x.onnx')],
            'NaN')


@pytest.mark.parametrize('argv, needle', [
    (['run', '--duration', '0'], '--duration must be a finite number > 0, got 0.0'),
    (['run', '--duration', '-1'], '--duration must be a finite number > 0'),
    (['run', '--duration', 'nan'], '--duration must be a finite number > 0, got nan'),
    (['latency', 'tvn_tiny', '--classes', '0'], '--classes must be >= 1, got 0'),
    (['latency', 'tvn_tiny', '--threads', '100000'], '--threads must be between 1 and'),
    (['latency', 'tvn_tiny', '--repeats', '0'], '--repeats must be >= 1'),
    (['ensemble', '--from-store', 's.db', '--data', 'd', '--out', 'o', '--pool', '0'],
     '--pool must be at least --top'),
])
def test_numbers_that_used_to_mean_default_or_forever_are_refused(tmp_path, monkeypatch,
                                                                  capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    refused(capsys, argv, needle)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ node start-up parameters
@pytest.mark.parametrize('module, overrides, needle', [
    ('activity_node', ['score_threshold:=7.0'], 'score_threshold'),
    ('activity_node', ['top_k:=0'], 'top_k'),
    ('activity_node', ['stride_seconds:=-3.0'], 'stride_seconds'),
    ('activity_node', ['top_k:=many'], 'top_k must be of type int'),
    ('search_node', ['data:='], "bad ROS arguments: Couldn't parse parameter override rule"),
    ('search_node', ['population:=eight'], 'population must be of type int'),
])
def test_node_start_up_parameters_get_the_run_time_checks(ros_env, python_exe, module,
                                                          overrides, needle):
    import subprocess

    args = [arg for item in overrides for arg in ('-p', item)]
    done = subprocess.run([python_exe, '-m', f'vas_ros.nodes.{module}', '--ros-args', *args],
                          capture_output=True, text=True, timeout=120, env=ros_env)
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, err)
    assert 'Traceback' not in err and needle in err, err
    assert len([line for line in err.splitlines() if line.startswith('error:')]) == 1, err


def test_a_failed_search_reports_its_error_line_not_traceback_frames(tmp_path):
    from vas_ros.nodes.search_node import _failure_reason

    log = tmp_path / 'search.log'
    log.write_text('started\nvas-ros search: error: --data /x: not a data set folder\n')
    assert _failure_reason(log) == 'vas-ros search: error: --data /x: not a data set folder'
    log.write_text('Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n'
                   '    boom()\nRuntimeError: worker died\n')
    reason = _failure_reason(log)
    assert reason.startswith('RuntimeError: worker died') and 'File "a.py"' not in reason
    assert str(log) in reason
    assert 'no log' in _failure_reason(tmp_path / 'missing.log')
