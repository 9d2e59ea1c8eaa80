"""Training loop, checkpoints, resume, evaluation and the train/eval CLI on real MP4 data.

Data: a tiny synthetic set (8 classes x 2 clips per split, 6 frames at 32 px) written as
real H.264 files by the data helper's generator; model: the baseline family at 4 frames of
32 px, so a training step takes a fraction of a second on one core.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import save_file

from vas_ros.cli import main
from vas_ros.data.datasets import open_dataset
from vas_ros.data.synth import write_synthetic_dataset
from vas_ros.errors import CheckpointError, DataError, VasError
from vas_ros.models.checkpoint import load_checkpoint, read_metadata
from vas_ros.models.factory import resolve_arch
from vas_ros.models.spec import InputSpec
from vas_ros.training.evaluate import evaluate
from vas_ros.training.trainer import HISTORY_FILE, MODEL_FILE, STATE_FILE, train

FRAME2D = {'family': 'baseline', 'name': 'frame2d_tiny',
           'genome': {'arch': 'frame2d', 'frames': 4, 'size': 32}}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'synth'
    write_synthetic_dataset(root, per_class=2, seed=5, size=32, frames=6, progress=False)
    return root


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('cache')


@pytest.fixture(scope='module')
def trained_run(data_root, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('run')
    result = train(FRAME2D, data_root, out=out, epochs=2, batch_size=4, seed=3,
                   progress=False, cache_dir=cache_dir)
    return out, result


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_writes_a_checkpoint_that_round_trips(trained_run, data_root, cache_dir):
    out, result = trained_run
    assert result.checkpoint == out / MODEL_FILE
    for name in (MODEL_FILE, STATE_FILE, HISTORY_FILE, 'curve.png'):
        assert (out / name).stat().st_size > 0, name
        assert (out / name).stat().st_mode & 0o044 == 0o044, f'{name} not readable by others'
    history = json.loads((out / HISTORY_FILE).read_text())
    assert [h['epoch'] for h in history] == [1, 2]
    assert history == result.history
    assert result.steps == history[-1]['step'] == 2 * (16 // 4)
    best = max(history, key=lambda h: (h['val_top1'], -h['val_loss']))
    assert result.val_top1 == best['val_top1']

    loaded = load_checkpoint(out / MODEL_FILE)
    assert loaded.classes == result.classes == sorted(loaded.classes)
    assert loaded.spec == result.spec
    assert loaded.arch == resolve_arch(FRAME2D)
    assert loaded.metadata['extra']['epoch'] == best['epoch']
    val = open_dataset(data_root, 'val', loaded.spec, cache_dir=cache_dir)
    inputs, _ = val[0]
    clip = inputs['rgb'][None]
    with torch.no_grad():
        assert torch.equal(loaded.model(clip), result.model(clip))
    # The saved best epoch's metrics are what evaluating the checkpoint gives.
    again = evaluate(loaded.model, val, batch_size=4)
    assert again['top1'] == pytest.approx(result.val_metrics['top1'])
    assert again['confusion'] == result.val_metrics['confusion']


def test_same_seed_same_run_other_seed_other_run(data_root, cache_dir):
    runs = [train(FRAME2D, data_root, max_steps=3, batch_size=4, seed=seed, progress=False,
                  cache_dir=cache_dir) for seed in (11, 11, 12)]
    assert runs[0].history[0]['train_loss'] == runs[1].history[0]['train_loss']
    assert same_weights(weights(runs[0].model), weights(runs[1].model))
    assert not same_weights(weights(runs[0].model), weights(runs[2].model))


def test_max_steps_stops_mid_epoch_and_still_validates(data_root, cache_dir):
    result = train(FRAME2D, data_root, max_steps=3, batch_size=4, progress=False,
                   cache_dir=cache_dir)
    assert result.steps == 3
    assert result.stopped_by == 'max_steps'
    assert len(result.history) == 1 and result.history[0]['partial']
    assert result.history[0]['clips'] == 12
    assert result.val_metrics['n'] == 16
    assert result.checkpoint is None


def test_max_seconds_bounds_an_open_ended_run(data_root, cache_dir):
    # Decode every clip into the cache first: alone, the first batch would spend the budget.
    train(FRAME2D, data_root, max_steps=1, batch_size=64, progress=False, cache_dir=cache_dir)
    # 1.5 s: a loaded 2-core machine took more than 0.5 s over the first augmented step
    result = train(FRAME2D, data_root, max_seconds=1.5, batch_size=4, progress=False,
                   cache_dir=cache_dir)
    assert result.stopped_by == 'max_seconds'
    assert 1 <= result.steps < 120
    assert result.history and 0.0 <= result.val_top1 <= 1.0


def test_train_takes_open_datasets_and_checks_their_input(data_root, cache_dir):
    spec = resolve_arch(FRAME2D).input_spec()
    train_set = open_dataset(data_root, 'train', spec, train=True, cache_dir=cache_dir)
    val_set = open_dataset(data_root, 'val', spec, cache_dir=cache_dir)
    result = train(FRAME2D, (train_set, val_set), max_steps=1, batch_size=4, progress=False)
    assert result.steps == 1 and result.val_metrics['n'] == len(val_set) == 16
    wrong = open_dataset(data_root, 'val', InputSpec(frames=3, size=32), cache_dir=cache_dir)
    with pytest.raises(DataError, match='opened for input'):
        train(FRAME2D, (train_set, wrong), max_steps=1, batch_size=4, progress=False)


def test_resume_continues_from_the_saved_epoch(data_root, cache_dir, tmp_path):
    first = train(FRAME2D, data_root, out=tmp_path, epochs=1, batch_size=4, seed=4,
                  progress=False, cache_dir=cache_dir)
    state_weights = weights(first.model)
    resumed = train(FRAME2D, data_root, out=tmp_path, epochs=3, batch_size=4, seed=4,
                    progress=False, cache_dir=cache_dir, resume=True)
    assert [h['epoch'] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[0] == first.history[0]
    assert resumed.steps == 3 * 4
    assert json.loads((tmp_path / HISTORY_FILE).read_text()) == resumed.history
    # Nothing left to do: a second resume with the same budget trains no further step.
    again = train(FRAME2D, data_root, out=tmp_path, epochs=3, batch_size=4, seed=4,
                  progress=False, cache_dir=cache_dir, resume=True)
    assert again.steps == resumed.steps and again.history == resumed.history
    assert same_weights(weights(again.model), weights(resumed.model))
    assert state_weights  # the first run really had weights to continue from


def test_resume_refuses_another_model(trained_run, data_root, cache_dir, tmp_path):
    out, _ = trained_run
    shutil.copy(out / STATE_FILE, tmp_path / STATE_FILE)
    other = {'family': 'baseline', 'name': 'frame2d_other',
             'genome': {'arch': 'frame2d', 'frames': 3, 'size': 32}}
    with pytest.raises(CheckpointError, match='same --model'):
        train(other, data_root, out=tmp_path, epochs=2, batch_size=4, progress=False,
              cache_dir=cache_dir, resume=True)


def test_bad_budgets_are_refused_before_any_work(data_root):
    for kwargs in ({'epochs': 0}, {'max_steps': 0}, {'max_seconds': -1}, {'batch_size': 0},
                   {'lr': 0}):
        with pytest.raises(VasError):
            train(FRAME2D, data_root, progress=False, **kwargs)
    with pytest.raises(VasError, match='run folder'):
        train(FRAME2D, data_root, resume=True, progress=False)


def eval_json(capsys, *argv) -> dict:
    assert main(['eval', *argv, '--json', '--device', 'cpu']) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_json_agrees_with_its_confusion_matrix(trained_run, data_root, cache_dir, capsys):
    out, result = trained_run
    report = eval_json(capsys, str(out / MODEL_FILE), '--data', str(data_root), '--cache-dir',
                       str(cache_dir))
    for key in ('top1', 'top5', 'per_class', 'n', 'confusion'):
        assert key in report
    confusion = torch.tensor(report['confusion'])
    assert confusion.shape == (8, 8)
    assert report['n'] == int(confusion.sum()) == 16
    assert report['top1'] == pytest.approx(float(confusion.trace()) / report['n'])
    assert report['top1'] <= report['top5'] <= 1.0
    for index, name in enumerate(report['classes']):
        row = confusion[index]
        assert report['per_class'][name] == pytest.approx(float(row[index]) / float(row.sum()))
    assert report['top1'] == pytest.approx(result.val_top1)
    train_report = eval_json(capsys, str(out / MODEL_FILE), '--data', str(data_root),
                             '--split', 'train', '--cache-dir', str(cache_dir))
    assert train_report['n'] == 16


def test_eval_text_output_and_confusion_png(trained_run, data_root, cache_dir, capsys,
                                            tmp_path):
    out, _ = trained_run
    png = tmp_path / 'confusion.png'
    assert main(['eval', str(out / MODEL_FILE), '--data', str(data_root), '--device', 'cpu',
                 '--quiet', '--cache-dir', str(cache_dir), '--confusion-png', str(png)]) == 0
    text = capsys.readouterr().out
    assert 'top-1' in text and 'move_left' in text and 'confusion' in text
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


class TwoMemberEnsemble(torch.nn.Module):
    """Averages two real frame2d networks; exposes member_logits like family `ensemble`."""

    def __init__(self, first, second):
        super().__init__()
        self.members = torch.nn.ModuleList([first, second])

    def member_logits(self, rgb):
        return [member(rgb) for member in self.members]

    def forward(self, rgb):
        return torch.stack(self.member_logits(rgb)).mean(0)


def test_evaluate_reports_ensemble_members(trained_run, data_root, cache_dir):
    out, result = trained_run
    other = load_checkpoint(out / MODEL_FILE).model
    torch.manual_seed(0)
    for param in other.parameters():
        param.data.add_(torch.randn_like(param) * 0.05)
    ensemble = TwoMemberEnsemble(result.model, other)
    val = open_dataset(data_root, 'val', result.spec, cache_dir=cache_dir)
    report = evaluate(ensemble, val, batch_size=8)
    assert [m['index'] for m in report['members']] == [0, 1]
    assert report['members'][0]['top1'] == pytest.approx(result.val_top1)
    single = evaluate(result.model, val, batch_size=8)
    assert 'members' not in single


def cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_eval_refuses_damaged_checkpoints(trained_run, data_root, tmp_path, capsys):
    out, _ = trained_run
    raw = (out / MODEL_FILE).read_bytes()
    truncated = tmp_path / 'truncated.safetensors'
    truncated.write_bytes(raw[:len(raw) // 2])
    err = cli_error(capsys, ['eval', str(truncated), '--data', str(data_root), '--device',
                             'cpu'])
    assert 'truncated.safetensors' in err
    header_cut = tmp_path / 'header_cut.safetensors'
    header_cut.write_bytes(raw[:20])
    assert 'header_cut.safetensors' in cli_error(
        capsys, ['eval', str(header_cut), '--data', str(data_root), '--device', 'cpu'])
    foreign = tmp_path / 'foreign.safetensors'
    save_file({'w': torch.zeros(2)}, foreign, metadata={'vas_ros': json.dumps(
        {'format': 'someone-else/9', 'arch': {}, 'classes': ['a'], 'input': {}})})
    assert 'unsupported checkpoint format' in cli_error(
        capsys, ['eval', str(foreign), '--data', str(data_root), '--device', 'cpu'])
    meta = read_metadata(out / MODEL_FILE)
    meta['arch']['genome']['arch'] = 'no_such_net'
    wrong = tmp_path / 'wrong_arch.safetensors'
    loaded = load_checkpoint(out / MODEL_FILE)
    save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, wrong,
              metadata={'vas_ros': json.dumps(meta)})
    assert 'does not describe a valid model' in cli_error(
        capsys, ['eval', str(wrong), '--data', str(data_root), '--device', 'cpu'])


def test_eval_refuses_data_with_other_classes(trained_run, data_root, tmp_path, capsys):
    out, _ = trained_run
    other = tmp_path / 'other'
    shutil.copytree(data_root / 'val', other / 'val')
    (other / 'val' / 'grow').rename(other / 'val' / 'zoom_in')
    err = cli_error(capsys, ['eval', str(out / MODEL_FILE), '--data', str(other), '--device',
                             'cpu'])
    assert 'classes do not match' in err and 'zoom_in' in err and "'grow'" in err


def test_train_cli_errors(data_root, trained_run, tmp_path, capsys):
    err = cli_error(capsys, ['train', '--model', 'no_such_model', '--data', str(data_root),
                             '--out', str(tmp_path / 'x'), '--device', 'cpu'])
    assert 'no_such_model' in err and 'preset' in err
    train_only = tmp_path / 'train_only'
    shutil.copytree(data_root / 'train', train_only / 'train')
    err = cli_error(capsys, ['train', '--model', 'frame2d', '--data', str(train_only),
                             '--out', str(tmp_path / 'y'), '--device', 'cpu'])
    assert "'val'" in err and str(train_only) in err
    out, _ = trained_run
    assert 'already holds a training run' in cli_error(
        capsys, ['train', '--model', 'frame2d', '--data', str(data_root), '--out', str(out)])
    assert 'nothing to resume' in cli_error(
        capsys, ['train', '--model', 'frame2d', '--data', str(data_root), '--out',
                 str(tmp_path / 'empty'), '--resume'])
    err = cli_error(capsys, ['train', '--model', 'frame2d', '--data', str(data_root),
                             '--out', str(tmp_path / 'gpu'), '--device', 'cuda:7'])
    assert ('cuda:7' in err) if torch.cuda.is_available() else ('no CUDA GPU' in err)


@pytest.mark.slow
def test_train_and_eval_cli_in_a_fresh_process(data_root, tmp_path, python_exe):
    genome = tmp_path / 'genome.json'
    genome.write_text(json.dumps({'family': 'baseline', 'name': 'r3d_tiny',
                                  'genome': {'arch': 'r3d_18', 'frames': 4, 'size': 32}}))
    run = tmp_path / 'run'
    done = subprocess.run([python_exe, '-m', 'vas_ros.cli', 'train', '--model', str(genome),
                           '--data', str(data_root), '--out', str(run), '--epochs', '1',
                           '--batch-size', '8', '--device', 'cpu', '--json'],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # progress and epoch lines go to stderr only
    assert 'epoch 1:' in done.stderr
    assert summary['steps'] == 2 and summary['checkpoint'] == str(run / MODEL_FILE)
    raw = (run / MODEL_FILE).read_bytes()
    (run / MODEL_FILE).write_bytes(raw[:len(raw) - 1000])
    bad = subprocess.run([python_exe, '-m', 'vas_ros.cli', 'eval', str(run / MODEL_FILE),
                          '--data', str(data_root), '--device', 'cpu', '--json'],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith('vas-ros eval: error:')
    assert 'Traceback' not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stdout == ''


def _train_cmd(python_exe, data_root, out, *extra):
    return [python_exe, '-m', 'vas_ros.cli', 'train', '--model', 'tvn_tiny', '--data',
            str(data_root), '--out', str(out), '--epochs', '3', '--batch-size', '4',
            '--seed', '6', '--device', 'cpu', '--quiet', *extra]


def _run_record(out) -> tuple[list, dict]:
    """History without its timings, and every tensor of the final training state."""
    from safetensors.torch import load_file

    timing = ('train_seconds', 'val_seconds', 'clips_per_s')
    history = [{k: v for k, v in h.items() if k not in timing}
               for h in json.loads((out / HISTORY_FILE).read_text())]
    return history, load_file(str(out / STATE_FILE))


@pytest.mark.slow
@pytest.mark.parametrize('cut', [1, 2])
def test_killed_and_resumed_training_equals_the_straight_run(data_root, tmp_path, python_exe,
                                                             cut):
    """SIGKILL after epoch `cut`, resume: the same history and the same weights, optimizer
    and RNG state, bit for bit, as a run that never stopped (augmentation and dropout
    streams come from (seed, epoch, index) or the saved state, not from the process)."""
    import os
    import signal
    import time

    straight = tmp_path / 'straight'
    done = subprocess.run(_train_cmd(python_exe, data_root, straight), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    killed = tmp_path / 'killed'
    proc = subprocess.Popen(_train_cmd(python_exe, data_root, killed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            history = killed / HISTORY_FILE
            if history.is_file() and len(json.loads(history.read_text() or '[]')) >= cut:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = len(json.loads((killed / HISTORY_FILE).read_text()))
    assert cut <= kept < 3, 'the run ended before it could be killed mid-way'
    again = subprocess.run(_train_cmd(python_exe, data_root, killed, '--resume'),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    history, state = _run_record(killed)
    want_history, want_state = _run_record(straight)
    assert history == want_history
    assert state.keys() == want_state.keys()
    differ = [k for k in state if not torch.equal(state[k], want_state[k])]
    assert not differ, differ[:5]
