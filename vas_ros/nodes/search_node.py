"""`architecture_search`: run a latency-constrained TVN search on the robot, from ROS.

The action `~/search` (vas_ros/action/Search) takes a goal with the search's settings
(zero or empty fields: the parameters), sends typed feedback (candidates done, rejected
and running, best so far, elapsed, ETA) and a result (checkpoint, accuracy, latency,
deployed); cancelling the goal stops the search cleanly and keeps its store. A goal does
not resume an earlier search in its output_dir unless it says `resume`.

For callers that only have `ros2 service call`, `~/start` (std_srvs/Trigger, the
parameters' settings) and `~/cancel` are thin wrappers over the same job. Either way the
search runs as a child process, `vas-ros search tvn` (same Python), so it gets its own
cores and cannot stall this node's executor; SIGTERM stops it cleanly. Progress from the
child's `--progress-jsonl` is also relayed on `~/status` (String JSON, transient-local).

When the search is done and `deploy_node` names a running `activity_recognizer`
(relative names resolve in this node's namespace), the best model is deployed by setting
that node's `model` parameter through its parameter service.

Everything lives in `output_dir` (store, progress, log, results). A search that was
running when its node stopped is resumed from its store by the next `~/start`, by a goal
with `resume`, or when the node starts again with the same `output_dir` if
`resume_on_start` is set (off by default: a heavy search does not restart itself on every
boot after a crash); the child also gets SIGTERM if this node dies, so the store is never
written by two searches.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vas_ros.nodes.common import declare_checked, descriptor, latched_qos

NODE_NAME = 'architecture_search'
CANCELLED_EXIT = 3
STATES = ('idle', 'running', 'done', 'failed', 'cancelled')
DEPLOY_WAIT_S = 10.0  # how long a deploy waits for the recogniser's parameter service
# Families a goal may ask for: the on-robot search is TVN's (its latency-sized space and
# proxy are what fits a robot CPU); the first is the default.
ON_ROBOT_FAMILIES = ('tvn',)

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


# Bounds that `ros2 param describe` shows and rclpy enforces; 0 means "the default" where
# the description says so.
RANGES = {'latency_budget_ms': (0.0, 3.6e6), 'population': (2, 10_000),
          'rounds': (0, 1_000_000), 'time_budget_s': (0.0, 3.0e7),
          'max_memory_mb': (0.0, 1.0e7), 'proxy_steps': (0, 10_000_000),
          'final_steps': (0, 10_000_000), 'latency_repeats': (0, 100_000),
          'seed': (0, 2**31 - 1), 'threads': (0, 1024)}


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
        declare_checked(self, {name: (default, descriptor(text, RANGES.get(name)))
                               for name, (default, text) in PARAMETERS.items()})
        self._group = ReentrantCallbackGroup()
        self._lock = threading.RLock()
        self._child: subprocess.Popen | None = None
        self._cancel_requested = False
        self._deploy_clients: dict[str, object] = {}
        self._overrides: dict = {}  # the running goal's settings (see _setting)
        self._job_done = threading.Event()
        self._job_done.set()
        self._pub_status = self.create_publisher(String, '~/status', latched_qos())
        self.create_service(Trigger, '~/start', self._on_start, callback_group=self._group)
        self.create_service(Trigger, '~/cancel', self._on_cancel, callback_group=self._group)
        self._action = ActionServer(self, _search_action(), '~/search', self._execute,
                                    goal_callback=self._on_goal,
                                    cancel_callback=lambda _goal: CancelResponse.ACCEPT,
                                    callback_group=self._group)
        self.status = {'state': 'idle', 'round': 0, 'candidates': 0, 'best_accuracy': None,
                       'best_latency_ms': None, 'budget_ms': None, 'output': '', 'message': '',
                       'output_dir': '', 'resumed': False}
        self._restore()

    # ---------------------------------------------------------------- files
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _setting(self, name: str):
        """What the current job uses: the action goal's value where it gave one, else the
        parameter (a ~/start call uses the parameters alone)."""
        if name in self._overrides:
            return self._overrides[name]
        return self._param(name)

    def _dir(self) -> Path:
        return Path(str(self._setting('output_dir'))).expanduser()

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
        response.success, response.message = self.cancel_search()
        return response

    def cancel_search(self) -> tuple[bool, str]:
        with self._lock:
            child = self._child
            if child is None or child.poll() is not None:
                return False, 'no search is running'
            self._cancel_requested = True
            child.send_signal(signal.SIGTERM)
        self._write_marker('stopped')
        return True, f'cancelling search pid {child.pid}; final state on ~/status'

    # ---------------------------------------------------------------- the action
    def _on_goal(self, goal) -> GoalResponse:
        if self.busy():
            self.get_logger().warning('search goal rejected: a search is already running '
                                      '(cancel it first)')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def busy(self) -> bool:
        with self._lock:
            return not self._job_done.is_set() or (
                self._child is not None and self._child.poll() is None)

    def _execute(self, goal_handle):
        """One search from goal to result, on the same job as ~/start: feedback twice a
        second, cancel as ROS 2 actions do (the search stops cleanly, its store is kept)."""
        Search = _search_action()
        overrides, problem = self.goal_settings(goal_handle.request)
        if not problem:
            with self._lock:  # no ~/start may slip in between the settings and the start
                if self.busy():
                    problem = 'a search is already running (cancel it first)'
                else:
                    self._overrides = overrides
                    ok, message = self.start_search(resumed=bool(goal_handle.request.resume))
                    if not ok:
                        problem = message
                        self._overrides = {}
        if problem:
            goal_handle.abort()
            return Search.Result(success=False, state='failed', message=problem,
                                 accuracy=math.nan, latency_ms=math.nan)
        started = time.monotonic()
        cancelling = False
        while True:
            if goal_handle.is_cancel_requested and not cancelling:
                cancelling = True
                self.cancel_search()
            finished = self._job_done.wait(0.5)
            goal_handle.publish_feedback(self._feedback(time.monotonic() - started))
            if finished:
                break
        result = self._result()
        self._overrides = {}
        if cancelling and result.state == 'cancelled':
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def goal_settings(self, goal) -> tuple[dict, str]:
        """A goal's fields as settings over the parameters (zero/empty: the parameter),
        or the reason it cannot run."""
        family = goal.family.strip() or ON_ROBOT_FAMILIES[0]
        if family not in ON_ROBOT_FAMILIES:
            return {}, (f'family {goal.family!r}: the on-robot search runs '
                        f'{", ".join(ON_ROBOT_FAMILIES)}')
        settings: dict = {'deploy': bool(goal.deploy)}
        for name in ('data', 'strategy', 'output_dir', 'deploy_node'):
            value = getattr(goal, name).strip()
            if value:
                settings[name] = value
        for name in ('latency_budget_ms', 'time_budget_s', 'population', 'rounds'):
            value = getattr(goal, name)
            high = RANGES[name][1]
            if not math.isfinite(value) or not 0 <= value <= high:
                return {}, f'{name} must be a number in [0, {high:g}] (0 = the parameter), ' \
                           f'got {value}'
            if value > 0:
                settings[name] = value
        options = [o.strip() for o in goal.space_options if o.strip()]
        if options:
            settings['space_options'] = options
        if settings['deploy'] and not str(settings.get('deploy_node',
                                                       self._param('deploy_node'))).strip():
            return {}, 'deploy: true needs a deploy_node (in the goal or the parameter)'
        out = Path(str(settings.get('output_dir', self._param('output_dir')))).expanduser()
        store = out / 'search.sqlite'
        if goal.resume and not store.is_file():
            return {}, f'resume: {out} holds no search to resume'
        if not goal.resume and store.is_file():
            last = _last_event(out / 'progress.jsonl') or {}
            return {}, (f'{out} already holds a search (last state: '
                        f'{last.get("state", "unknown")}); set resume: true to continue it, '
                        f'or give another output_dir')
        return settings, ''

    def _feedback(self, elapsed: float):
        feedback = _search_action().Feedback()
        status = dict(self.status)
        done = int(status.get('candidates') or 0)
        total = int(status.get('total') or 0)
        eta = math.nan
        if done > 0 and total > done:
            eta = elapsed / done * (total - done)
        limit = float(status.get('time_budget_s') or 0.0)
        if limit > 0:
            eta = min(eta, max(0.0, limit - elapsed)) if math.isfinite(eta) else eta
        feedback.state = str(status.get('state', ''))
        feedback.candidates_done = done
        feedback.candidates_rejected = int(status.get('rejected') or 0)
        feedback.candidates_running = int(status.get('running') or 0)
        feedback.round = int(status.get('round') or 0)
        feedback.rounds = int(status.get('rounds') or 0)
        feedback.best_accuracy = _number(status.get('best_accuracy'))
        feedback.best_latency_ms = _number(status.get('best_latency_ms'))
        feedback.elapsed_s = float(elapsed)
        feedback.eta_s = float(eta)
        feedback.message = str(status.get('message', ''))[:1000]
        return feedback

    def _result(self):
        status = dict(self.status)
        deploy = status.get('deploy') or {}
        checkpoint = (_best_checkpoint(status.get('output'), self._dir() / 'result')
                      if status.get('state') == 'done' else None)
        wanted = bool(self._overrides.get('deploy', True))
        deployed = bool(deploy.get('ok'))
        state = str(status.get('state', 'failed'))
        return _search_action().Result(
            success=state == 'done' and (deployed or not wanted), state=state,
            message=str(status.get('message', '')),
            checkpoint=str(checkpoint or ''),
            accuracy=_number(status.get('final_val_top1')),
            latency_ms=_number(status.get('best_latency_ms')),
            deployed=deployed, deploy_message=str(deploy.get('message', '')))

    def _check(self) -> str:
        data = str(self._setting('data')).strip()
        if not data:
            return 'parameter data is empty: set it to a data set root (vas-ros data synth ...)'
        if not Path(data).expanduser().exists():
            return f'data: {data} does not exist'
        inside = Path(data).expanduser().resolve()
        out = self._dir().resolve()
        if out == inside or inside in out.parents:
            return (f'output_dir {out} is inside the data set {inside}; a later run would '
                    f'read the outputs as classes. Put them elsewhere')
        if not float(self._setting('latency_budget_ms')) > 0:
            return f'latency_budget_ms must be > 0, got {self._setting("latency_budget_ms")}'
        if int(self._setting('population')) < 2:
            return f'population must be >= 2, got {self._setting("population")}'
        if int(self._setting('rounds')) < 0:
            return f'rounds must be >= 0, got {self._setting("rounds")}'
        if float(self._setting('time_budget_s')) < 0:
            return f'time_budget_s must be >= 0, got {self._setting("time_budget_s")}'
        if str(self._setting('strategy')) not in ('evolution', 'random'):
            return f'strategy must be evolution or random, got {self._setting("strategy")!r}'
        if float(self._setting('max_memory_mb')) < 0:
            return f'max_memory_mb must be >= 0, got {self._setting("max_memory_mb")}'
        bad = [o for o in self._setting('space_options') if o.strip() and '=' not in o]
        if bad:
            return f'space_options must be KEY=VALUE, got {bad}'
        for name in ('proxy_steps', 'final_steps', 'latency_repeats', 'threads'):
            if int(self._setting(name)) < 0:
                return f'{name} must be >= 0, got {self._setting(name)}'
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
               '--data', str(Path(str(self._setting('data'))).expanduser()),
               '--latency-budget-ms', str(float(self._setting('latency_budget_ms'))),
               '--population', str(int(self._setting('population'))),
               '--rounds', str(int(self._setting('rounds'))),
               '--store', str(out / 'search.sqlite'), '--out', str(out / 'result'),
               '--device', str(self._setting('device')), '--seed', str(int(self._setting('seed'))),
               '--progress-jsonl', str(out / 'progress.jsonl')]
        cmd += ['--time-budget-s', str(float(self._setting('time_budget_s'))),
                '--strategy', str(self._setting('strategy'))]
        if float(self._setting('max_memory_mb')) > 0:
            cmd += ['--max-memory-mb', str(float(self._setting('max_memory_mb')))]
        for name in ('proxy_steps', 'final_steps', 'latency_repeats', 'threads'):
            if int(self._setting(name)) > 0:
                cmd += ['--' + name.replace('_', '-'), str(int(self._setting(name)))]
        for option in self._setting('space_options'):
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
            self._job_done.clear()
            self._update({'state': 'running', 'round': 0, 'candidates': 0,
                          'best_accuracy': None, 'best_latency_ms': None,
                          'final_val_top1': None, 'rejected': 0, 'running': 0,
                          'budget_ms': float(self._setting('latency_budget_ms')),
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
                self._job_done.set()
                return False, outcome['error']
            self._child = outcome['child']
            self._write_marker('running')
            self._update({})
        verb = 'resumed' if resumed else 'started'
        return True, (f'{verb} TVN search pid {self._child.pid} in {self._dir()}; '
                      f'progress on {self._pub_status.topic_name}')

    # ---------------------------------------------------------------- the child
    def _watch(self, started: threading.Event, outcome: dict) -> None:
        try:
            self._run_child(started, outcome)
        finally:
            self._job_done.set()

    def _run_child(self, started: threading.Event, outcome: dict) -> None:
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
        target = str(self._setting('deploy_node')).strip()
        checkpoint = _best_checkpoint(self.status.get('output'), self._dir() / 'result')
        if not self._overrides.get('deploy', True):
            self._update({'deploy': {'ok': False, 'checkpoint': str(checkpoint or ''),
                                     'message': 'not deployed: the goal did not ask to'}})
            return
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


def _search_action():
    """The generated vas_ros/action/Search type, or a VasError saying how to build it."""
    try:
        from vas_ros.action import Search
    except ImportError as exc:
        from vas_ros.errors import VasError

        raise VasError(f'the vas_ros action types are not built ({exc}): run `make venv` '
                       'here, or `colcon build` on a robot') from None
    return Search


def _number(value) -> float:
    """A float field from a status value; NaN for unknown."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


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

    # Multi-threaded: an action goal's execute callback waits for its search, and the
    # cancel requests, services and the deploy's answers must be served meanwhile.
    return run_single(SearchNode, argv, multi_threaded=True)


if __name__ == '__main__':
    raise SystemExit(main())
