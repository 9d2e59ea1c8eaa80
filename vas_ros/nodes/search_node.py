"""`architecture_search`: run a latency-constrained TVN search on the robot, from ROS.

`~/start` (std_srvs/Trigger) answers at once and runs `vas-ros search tvn` as a child
process (same Python), so the search gets its own cores and cannot stall this node's
executor; `~/cancel` sends it SIGTERM (the search stops cleanly and keeps its store).
Progress from the child's `--progress-jsonl` is relayed on `~/status` (String JSON,
transient-local). When the search is done and `deploy_node` names a running
`activity_recognizer`, the best model is deployed by setting that node's `model`
parameter through its parameter service.

Everything lives in `output_dir` (store, progress, log, results). A search that was
running when its node stopped is resumed from its store by the next `~/start`, or when the
node starts again with the same `output_dir` if `resume_on_start` is set (off by default:
a heavy search does not restart itself on every boot after a crash); the child also gets
SIGTERM if this node dies, so the store is never written by two searches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vas_ros.nodes.common import declare_checked, latched_qos

NODE_NAME = 'architecture_search'
CANCELLED_EXIT = 3
STATES = ('idle', 'running', 'done', 'failed', 'cancelled')
DEPLOY_WAIT_S = 10.0  # how long a deploy waits for the recogniser's parameter service

PARAMETERS = {
    'data': ('', 'training data for the search (a vas-ros data set root)'),
    'latency_budget_ms': (50.0, 'per-clip latency budget measured on this machine'),
    'population': (8, 'initial candidates and size of the evolving population'),
    'rounds': (24, 'children evaluated after the initial population'),
    'time_budget_s': (3600.0, 'stop proposing after this many seconds; 0 = no limit'),
    'strategy': ('evolution', 'evolution, or random (the control: mutation off)'),
    'max_memory_mb': (0.0, 'refuse candidates estimated to need more memory to train; '
                           '0 = half of what the device has available'),
    'device': ('cpu', 'device the candidates are trained and timed on'),
    'output_dir': ('~/.vas_ros/search', 'store, progress, log and results of the search'),
    'deploy_node': ('activity_recognizer', "recogniser to deploy the best model to; '' = none"),
    'proxy_steps': (0, 'training steps per candidate; 0 = the search default'),
    'final_steps': (0, 'cap on training the best candidate; 0 = the search default'),
    'latency_repeats': (0, 'timed forward passes per candidate; 0 = the search default'),
    'seed': (0, 'random seed'),
    'threads': (0, 'torch threads for the search; 0 = the search default'),
    'space_options': ([''], "search-space options KEY=VALUE (VALUE as JSON), e.g. "
                            "'max_filters=64'; [''] = none"),
    'resume_on_start': (False, 'resume, at start-up, a search this node was running when it '
                               'stopped (off: a search that crashed a robot does not '
                               'restart on every boot; ~/start resumes it)'),
}


def _die_with_parent() -> None:
    """In the child: get SIGTERM (a clean cancel) if the node process dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class SearchNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        declare_checked(self, {name: (default, ParameterDescriptor(description=text))
                               for name, (default, text) in PARAMETERS.items()})
        self._group = ReentrantCallbackGroup()
        self._lock = threading.RLock()
        self._child: subprocess.Popen | None = None
        self._cancel_requested = False
        self._deploy_clients: dict[str, object] = {}
        self._pub_status = self.create_publisher(String, '~/status', latched_qos())
        self.create_service(Trigger, '~/start', self._on_start, callback_group=self._group)
        self.create_service(Trigger, '~/cancel', self._on_cancel, callback_group=self._group)
        self.status = {'state': 'idle', 'round': 0, 'candidates': 0, 'best_accuracy': None,
                       'best_latency_ms': None, 'budget_ms': None, 'output': '', 'message': '',
                       'output_dir': '', 'resumed': False}
        self._restore()

    # ---------------------------------------------------------------- files
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _dir(self) -> Path:
        return Path(str(self._param('output_dir'))).expanduser()

    def _marker(self) -> Path:
        return self._dir() / 'node_state.json'

    def _write_marker(self, wanted: str) -> None:
        try:
            self._marker().write_text(json.dumps({'wanted': wanted, 'time': time.time()}))
        except OSError as exc:
            self.get_logger().warning(f'cannot write {self._marker()}: {exc}')

    def _restore(self) -> None:
        """Publish what the last search in output_dir did; resume it if it was cut off."""
        progress = self._dir() / 'progress.jsonl'
        last = _last_event(progress)
        if last:
            self._update(last, output_dir=str(self._dir()))
        else:
            self._publish()
        try:
            wanted = json.loads(self._marker().read_text()).get('wanted')
        except (OSError, ValueError):
            wanted = None
        interrupted = wanted == 'running' and (not last or last.get('state')
                                                not in ('done', 'failed'))
        if interrupted and self._param('resume_on_start'):
            ok, message = self.start_search(resumed=True)
            self.get_logger().info(f'resuming the interrupted search: {message}')
        elif last and last.get('state') == 'running':
            self._update({'state': 'cancelled', 'message': 'interrupted when its node stopped; '
                                                           '~/start resumes it'})

    # ---------------------------------------------------------------- services
    def _on_start(self, request, response):
        response.success, response.message = self.start_search()
        return response

    def _on_cancel(self, request, response):
        with self._lock:
            child = self._child
            if child is None or child.poll() is not None:
                response.success, response.message = False, 'no search is running'
                return response
            self._cancel_requested = True
            child.send_signal(signal.SIGTERM)
        self._write_marker('stopped')
        response.success = True
        response.message = f'cancelling search pid {child.pid}; final state on ~/status'
        return response

    def _check(self) -> str:
        data = str(self._param('data')).strip()
        if not data:
            return 'parameter data is empty: set it to a data set root (vas-ros data synth ...)'
        if not Path(data).expanduser().exists():
            return f'parameter data: {data} does not exist'
        if not float(self._param('latency_budget_ms')) > 0:
            return f'latency_budget_ms must be > 0, got {self._param("latency_budget_ms")}'
        if int(self._param('population')) < 2:
            return f'population must be >= 2, got {self._param("population")}'
        if int(self._param('rounds')) < 0:
            return f'rounds must be >= 0, got {self._param("rounds")}'
        if float(self._param('time_budget_s')) < 0:
            return f'time_budget_s must be >= 0, got {self._param("time_budget_s")}'
        if str(self._param('strategy')) not in ('evolution', 'random'):
            return f'strategy must be evolution or random, got {self._param("strategy")!r}'
        if float(self._param('max_memory_mb')) < 0:
            return f'max_memory_mb must be >= 0, got {self._param("max_memory_mb")}'
        bad = [o for o in self._param('space_options') if o.strip() and '=' not in o]
        if bad:
            return f'space_options must be KEY=VALUE, got {bad}'
        for name in ('proxy_steps', 'final_steps', 'latency_repeats', 'threads'):
            if int(self._param(name)) < 0:
                return f'{name} must be >= 0, got {self._param(name)}'
        try:
            self._dir().mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f'output_dir {self._dir()}: cannot create it ({exc})'
        if not os.access(self._dir(), os.W_OK):
            return f'output_dir {self._dir()} is not writable'
        return ''

    def command(self) -> list[str]:
        out = self._dir()
        cmd = [sys.executable, '-m', 'vas_ros', 'search', 'tvn',
               '--data', str(Path(str(self._param('data'))).expanduser()),
               '--latency-budget-ms', str(float(self._param('latency_budget_ms'))),
               '--population', str(int(self._param('population'))),
               '--rounds', str(int(self._param('rounds'))),
               '--store', str(out / 'search.sqlite'), '--out', str(out / 'result'),
               '--device', str(self._param('device')), '--seed', str(int(self._param('seed'))),
               '--progress-jsonl', str(out / 'progress.jsonl')]
        cmd += ['--time-budget-s', str(float(self._param('time_budget_s'))),
                '--strategy', str(self._param('strategy'))]
        if float(self._param('max_memory_mb')) > 0:
            cmd += ['--max-memory-mb', str(float(self._param('max_memory_mb')))]
        for name in ('proxy_steps', 'final_steps', 'latency_repeats', 'threads'):
            if int(self._param(name)) > 0:
                cmd += ['--' + name.replace('_', '-'), str(int(self._param(name)))]
        for option in self._param('space_options'):
            if option.strip():
                cmd += ['--space-option', option.strip()]
        return cmd

    def start_search(self, resumed: bool = False) -> tuple[bool, str]:
        with self._lock:
            if self._child is not None and self._child.poll() is None:
                return False, f'a search is already running (pid {self._child.pid}); ' \
                              f'call ~/cancel first'
            problem = self._check()
            if problem:
                return False, problem
            self._cancel_requested = False
            self._update({'state': 'running', 'round': 0, 'candidates': 0,
                          'best_accuracy': None, 'best_latency_ms': None,
                          'budget_ms': float(self._param('latency_budget_ms')),
                          'message': 'resumed from the store' if resumed else 'started',
                          'resumed': resumed, 'output': '', 'deploy': None},
                         output_dir=str(self._dir()))
            started = threading.Event()
            outcome: dict = {}
            # The thread that starts the child must outlive it (PR_SET_PDEATHSIG follows
            # the parent thread), so the watcher thread both starts and waits for it.
            threading.Thread(target=self._watch, args=(started, outcome), daemon=True,
                             name='search_watch').start()
            started.wait(30.0)
            if 'error' in outcome:
                self._update({'state': 'failed', 'message': outcome['error']})
                return False, outcome['error']
            self._child = outcome['child']
            self._write_marker('running')
            self._update({})
        verb = 'resumed' if resumed else 'started'
        return True, (f'{verb} TVN search pid {self._child.pid} in {self._dir()}; '
                      f'progress on {self._pub_status.topic_name}')

    # ---------------------------------------------------------------- the child
    def _watch(self, started: threading.Event, outcome: dict) -> None:
        out = self._dir()
        progress = out / 'progress.jsonl'
        offset = progress.stat().st_size if progress.exists() else 0
        try:
            log = open(out / 'search.log', 'ab')
            child = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        except OSError as exc:
            outcome['error'] = f'could not start the search process: {exc}'
            started.set()
            return
        outcome['child'] = child
        started.set()
        self.get_logger().info(f'search pid {child.pid}: {" ".join(self.command())}')
        last = None
        while child.poll() is None:
            offset, events = _read_events(progress, offset)
            for event in events:
                last = event
                # The final state is published once the process has exited, so a client
                # that sees it can start again at once.
                self._update({**event, 'state': 'running'})
            time.sleep(0.3)
        log.close()
        offset, events = _read_events(progress, offset)
        for event in events:
            last = event
            self._update({**event, 'state': 'running'})
        code = child.returncode
        if code == 0:
            final = {'state': 'done', 'message': (last or {}).get('message') or 'search done'}
        elif code == CANCELLED_EXIT or self._cancel_requested:
            final = {'state': 'cancelled', 'message': 'search cancelled; its store is kept, '
                                                      '~/start resumes it'}
        else:
            final = {'state': 'failed',
                     'message': f'search exited with code {code}: '
                                f'{_failure_reason(out / "search.log")}'}
        self._update(final)
        if final['state'] != 'cancelled':
            self._write_marker('stopped')
        if final['state'] == 'done':
            self._deploy()

    def deploy_service(self, target: str) -> str:
        """The recogniser's set_parameters service: an absolute `deploy_node` as given, a
        relative one in this node's namespace (so /robot1's search deploys to /robot1's
        recogniser), as ROS resolves relative names."""
        if target.startswith('/'):
            return f'{target.rstrip("/")}/set_parameters'
        return f'{self.get_namespace().rstrip("/")}/{target}/set_parameters'

    def _deploy(self) -> None:
        target = str(self._param('deploy_node')).strip()
        checkpoint = _best_checkpoint(self.status.get('output'), self._dir() / 'result')
        if not target:
            self._update({'deploy': {'ok': False, 'message': 'deploy_node is empty'}})
            return
        if checkpoint is None:
            self._update({'deploy': {'ok': False, 'message': 'no checkpoint found in '
                                     f'{self.status.get("output") or self._dir()}'}})
            return
        service = self.deploy_service(target)
        client = self._deploy_clients.get(service)
        if client is None:
            client = self.create_client(SetParameters, service, callback_group=self._group)
            self._deploy_clients[service] = client
        if not client.wait_for_service(timeout_sec=DEPLOY_WAIT_S):
            self._update({'deploy': {'ok': False, 'checkpoint': str(checkpoint),
                                     'message': f'{service} is not available'}})
            return
        request = SetParameters.Request(parameters=[ParameterMsg(
            name='model', value=ParameterValue(type=ParameterType.PARAMETER_STRING,
                                               string_value=str(checkpoint)))])
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(120.0) or future.result() is None:
            result = {'ok': False, 'message': f'{service} did not answer'}
        else:
            answer = future.result().results[0]
            result = {'ok': bool(answer.successful), 'message': answer.reason or 'deployed'}
        result.update({'node': target, 'checkpoint': str(checkpoint)})
        self.get_logger().info(f'deploy to {target}: {result}')
        self._update({'deploy': result})

    # ---------------------------------------------------------------- status
    def _update(self, event: dict, **more) -> None:
        with self._lock:
            for key, value in {**event, **more}.items():
                if key in ('state',) and value not in STATES:
                    continue
                self.status[key] = value
            self.status['pid'] = self._child.pid if self._child is not None else None
        self._publish()

    def _publish(self) -> None:
        self._pub_status.publish(String(data=json.dumps(self.status, default=str)))

    def destroy_node(self):
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # cancel cleanly; the marker says resume
            try:
                child.wait(timeout=30.0)
            except subprocess.TimeoutExpired:
                child.kill()
        return super().destroy_node()


def _read_events(path: Path, offset: int) -> tuple[int, list[dict]]:
    """New complete JSON lines after `offset`."""
    try:
        with open(path, 'rb') as handle:
            handle.seek(offset)
            chunk = handle.read()
    except OSError:
        return offset, []
    events = []
    end = chunk.rfind(b'\n') + 1
    for line in chunk[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return offset + end, events


def _last_event(path: Path) -> dict | None:
    events = _read_events(path, 0)[1] if path.exists() else []
    return events[-1] if events else None


def _failure_reason(path: Path) -> str:
    """One line for the user from a failed search's log: its `vas-ros ...: error:` line,
    else the exception's own last line (never traceback frames); the log has the rest."""
    try:
        text = [line.rstrip() for line in path.read_text(errors='replace').splitlines()]
    except OSError:
        return f'no log at {path}'
    for line in reversed(text):
        if line.startswith('vas-ros ') and ': error: ' in line:
            return line
    for line in reversed(text):
        if line and not line[0].isspace() and not line.startswith('Traceback'):
            return f'{line[:300]} (full log: {path})'
    return f'no output (full log: {path})'


def _best_checkpoint(output, result_dir: Path) -> Path | None:
    """The checkpoint a finished search points at (a file, or the newest in its folder)."""
    for candidate in (output, result_dir):
        if not candidate:
            continue
        path = Path(str(candidate)).expanduser()
        if path.is_file() and path.suffix == '.safetensors':
            return path
        if path.is_dir():
            for name in ('best.safetensors', 'model.safetensors', 'best/model.safetensors'):
                if (path / name).is_file():
                    return path / name
            found = sorted(path.rglob('*.safetensors'), key=lambda p: p.stat().st_mtime)
            if found:
                return found[-1]
    return None


def main(argv=None) -> int:
    from vas_ros.nodes.common import run_single

    return run_single(SearchNode, argv)


if __name__ == '__main__':
    raise SystemExit(main())
