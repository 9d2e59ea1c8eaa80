"""Where candidate evaluations run: a local process pool (default) or a Ray cluster.

Both run the same task function (named as "module:function", called with one
JSON-like payload dict, returning a result dict) and yield results as they arrive.
Results cross the process/Ray boundary as plain dicts; a task that fails (raises, or its
worker dies) comes back as `EvalResult.failure(...).to_dict()`, i.e. `ok` false with an
`error`, never as an exception. The driver rebuilds evaluation results with
`EvalResult.from_dict` (see `runner.py`).

Latency rule (both backends): latency is never measured by a worker. The search driver
(the `vas-ros search` process) measures every proposal's latency itself, between
batches, while no evaluation is running on its machine (see `engine.py`). So launch the
search ON THE DEPLOYMENT MACHINE (the robot's computer, with the `--device` and threads
it will use): with Ray, that machine is the driver and the cluster only trains; workers
never time anything, so their hardware cannot leak into the budget.

Local workers are `spawn`ed processes (no fork of a process holding torch threads), each
limited to `threads` torch threads, ignoring SIGINT (the driver decides), and exiting by
themselves if the driver disappears (even after SIGKILL), so nothing is left training.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait as wait_ready

from vas_ros.errors import VasError
from vas_ros.search.engine import SearchCancelled
from vas_ros.search.records import EvalResult

POLL_S = 0.2


def resolve_function(ref: str) -> Callable[[dict], dict]:
    module, _, name = ref.partition(':')
    return getattr(importlib.import_module(module), name)


def run_task(fn_ref: str, payload: dict) -> dict:
    """Call the task function; any exception becomes a failed EvalResult (as a dict)."""
    try:
        return resolve_function(fn_ref)(payload)
    except VasError as exc:
        return EvalResult.failure(f'{type(exc).__name__}: {exc}').to_dict()
    except Exception as exc:
        tail = ''.join(traceback.format_exception(exc)[-6:])
        return EvalResult.failure(f'{type(exc).__name__}: {exc}\n{tail}').to_dict()


def _set_threads(threads: int | None) -> None:
    if threads:
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            os.environ[var] = str(threads)
        import torch

        torch.set_num_threads(threads)


# -- local process pool ---------------------------------------------------------------------
def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(1)


def _worker_main(conn, threads: int | None, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    _set_threads(threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        key, fn_ref, payload = message
        result = run_task(fn_ref, payload)
        try:
            conn.send((key, result))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx, threads: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, threads, os.getpid()),
                                   daemon=True, name='vas-ros-search-worker')
        self.process.start()
        child.close()
        self.key = None

    def stop(self, grace: float = 2.0, *, polite: bool = False) -> None:
        if polite and self.key is None and self.process.is_alive():
            try:  # idle: ask it to leave, so it exits normally and releases what it holds
                self.conn.send(None)
                self.process.join(grace)
            except OSError:
                pass
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(grace)
        self.conn.close()


class LocalBackend:
    """`workers` spawned processes, each with `threads` torch threads (default: the CPUs
    this process may use, divided among the workers)."""

    name = 'local'

    def __init__(self, workers: int = 1, threads: int | None = None):
        if workers < 1:
            raise VasError(f'--workers must be >= 1, got {workers}')
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (
            os.cpu_count() or 1)
        self.workers = workers
        self.threads = threads or max(1, cpus // workers)
        self._ctx = mp.get_context('spawn')
        self._pool: list[_Worker] = []

    def describe(self) -> dict:
        return {'backend': self.name, 'workers': self.workers, 'threads': self.threads}

    def map_unordered(self, fn_ref: str, tasks: list[tuple[object, dict]],
                      should_stop: Callable[[], bool]) -> Iterator[tuple[object, dict]]:
        queue = deque(tasks)
        while len(self._pool) < min(self.workers, len(tasks)):
            self._pool.append(_Worker(self._ctx, self.threads))
        busy = 0
        while queue or busy:
            for worker in self._pool:
                if worker.key is None and queue:
                    key, payload = queue.popleft()
                    worker.key = key
                    worker.conn.send((key, fn_ref, payload))
                    busy += 1
            waiting = [w for w in self._pool if w.key is not None]
            ready = set(wait_ready([w.conn for w in waiting] +
                                   [w.process.sentinel for w in waiting], timeout=POLL_S))
            if should_stop():
                self.close()
                raise SearchCancelled()
            for index, worker in enumerate(list(self._pool)):
                if worker.key is None:
                    continue
                lost = False  # the pipe closed: the worker is dead or dying
                if worker.conn in ready or (worker.process.sentinel in ready
                                            and worker.conn.poll()):
                    try:
                        key, result = worker.conn.recv()
                    except (EOFError, OSError):
                        lost = True
                    else:
                        worker.key = None
                        busy -= 1
                        yield key, result
                        continue
                if lost or worker.process.sentinel in ready or not worker.process.is_alive():
                    worker.process.join(5.0)  # reap it so that its exit code is known
                    key, code = worker.key, worker.process.exitcode
                    worker.key = None
                    busy -= 1
                    worker.stop()
                    self._pool[index] = _Worker(self._ctx, self.threads)
                    yield key, EvalResult.failure(f'worker process died (exit code {code}); '
                                                  f'out of memory?').to_dict()

    def close(self) -> None:
        """Idle workers exit normally; busy ones (a cancel) are terminated."""
        for worker in self._pool:
            worker.stop(polite=True)
        self._pool = []


# -- Ray ------------------------------------------------------------------------------------
def _ray_task(fn_ref: str, payload: dict, threads: int | None) -> dict:
    _set_threads(threads)
    return run_task(fn_ref, payload)


class RayBackend:
    """Tasks on a Ray cluster (`address`, e.g. "ray://head:10001" or "auto"), or on a local
    Ray instance started here with `workers` CPUs. Each task asks Ray for `threads` CPUs.

    The nodes need this package installed and the data folder at the same path (a shared
    file system); the driver (this process) measures latency, see the module docstring.
    """

    name = 'ray'

    def __init__(self, workers: int = 1, threads: int | None = None,
                 address: str | None = None):
        try:
            import ray
        except ImportError:
            raise VasError('--backend ray needs the "ray" package (pip install ray)') from None
        self._ray = ray
        self.workers = workers
        self.threads = threads or 1
        self.address = address
        self._owns = False
        if not ray.is_initialized():
            # ray.init replaces the SIGTERM handler with sys.exit; keep the caller's (the CLI
            # turns SIGTERM into a clean cancel).
            main_thread = threading.current_thread() is threading.main_thread()
            previous = signal.getsignal(signal.SIGTERM) if main_thread else None
            try:
                if address:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(num_cpus=max(workers * self.threads, 1), include_dashboard=False,
                             log_to_driver=False)
            except Exception as exc:
                raise VasError(f'cannot start/connect Ray (address={address!r}): {exc}'
                               ) from None
            finally:
                if main_thread and previous is not None:
                    signal.signal(signal.SIGTERM, previous)
            self._owns = True
        self._remote = ray.remote(num_cpus=self.threads, max_retries=0)(_ray_task)

    def describe(self) -> dict:
        return {'backend': self.name, 'address': self.address or 'local',
                'workers': self.workers, 'threads': self.threads}

    def map_unordered(self, fn_ref: str, tasks: list[tuple[object, dict]],
                      should_stop: Callable[[], bool]) -> Iterator[tuple[object, dict]]:
        ray = self._ray
        pending = {self._remote.remote(fn_ref, payload, self.threads): key
                   for key, payload in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            if should_stop():
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise SearchCancelled()
            for ref in done:
                key = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # worker crash, node loss: that candidate failed
                    result = EvalResult.failure(f'Ray task failed: {exc}'[:4000]).to_dict()
                yield key, result

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def make_backend(name: str, *, workers: int = 1, threads: int | None = None,
                 address: str | None = None):
    if name == 'local':
        if address:
            raise VasError('--address only applies to --backend ray')
        return LocalBackend(workers, threads)
    if name == 'ray':
        return RayBackend(workers, threads, address)
    raise VasError(f'unknown backend {name!r}; use local or ray')
