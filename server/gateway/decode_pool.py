"""Decoding in worker processes, each decode with a time and a memory budget.

Encoded images are decoded by `server.gateway.decode_worker` processes, one image at a time
each, forked from a fork server that has imported the decoder once. A process is a budget Pillow
cannot overrun: its address space is capped (`DecodeBudget.worker_memory_bytes`), and a decode
that runs past `time_s`, or past the caller's deadline, or whose caller goes away, is stopped by
killing the process; a fresh one takes its place at once. Nothing is shared between requests but
the pool itself: no lock is held while an image decodes.

How many decode at once follows from memory, not from the core count: `memory_budget_bytes` //
`worker_memory_bytes` processes, so the decoders together never need more than the budget.

Costly images are kept from starving ordinary ones by lanes. Every decode starts in a fast lane
(all processes but `slow_lanes`); one that has used `slow_after_s` of CPU time (not wall time,
which a busy machine stretches for every image) moves to a slow lane,
where it continues at the lowest CPU priority (nice 19), freeing its fast lane for the next
image. When every slow lane is taken, such a decode is stopped instead and answered
RESOURCE_EXHAUSTED, a retryable status: the server is busy with other costly images. A process
that has run in a slow lane is replaced afterwards (a process cannot raise its own priority
back), so fast lanes always run at normal priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np

from server.gateway import decode_worker
from server.gateway.errors import DeadlineExceeded, InvalidImage, LimitExceeded
from server.gateway.image_limits import ImageLimits

log = logging.getLogger(__name__)

MIB: Final = 1024 * 1024
SLOW_PRIORITY: Final = 19
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
# A decode that has had less CPU than slow_after_s is waiting for a core, not costly: how long
# to wait at least before looking at its CPU time again.
_RECHECK_S: Final = 0.02

Size = tuple[int, int]
T = TypeVar("T")

# Why a decode was stopped, as counted by the `on_stopped` callback.
STOPPED_TIME: Final = "time_budget"
STOPPED_DEADLINE: Final = "deadline"
STOPPED_CANCELLED: Final = "cancelled"
STOPPED_SLOW_LANES_FULL: Final = "slow_lanes_full"
STOPPED_WORKER_DIED: Final = "worker_died"


@dataclass(frozen=True)
class DecodeBudget:
    """What one decode, and all decodes together, may cost."""

    time_s: float = 3.0
    """Longest one decode may run, in either lane."""

    worker_memory_bytes: int = 1024 * MIB
    """Address-space cap of each decode process (the interpreter and the decoder included)."""

    memory_budget_bytes: int = 4096 * MIB
    """Memory for all decode processes together; their count is this // worker_memory_bytes."""

    slow_after_s: float = 0.1
    """A decode that has used this much CPU time moves to a slow lane (or is stopped if none is
    free)."""

    slow_lanes: int = 2
    """Processes kept for decodes that run longer than slow_after_s."""

    def __post_init__(self) -> None:
        if self.time_s <= 0 or self.slow_after_s <= 0:
            raise ValueError("time_s and slow_after_s must be positive")
        if self.slow_lanes < 0:
            raise ValueError(f"slow_lanes must be 0 or more, got {self.slow_lanes}")
        if self.processes < self.slow_lanes + 1:
            raise ValueError(
                f"a decode memory budget of {self.memory_budget_bytes // MIB} MiB holds "
                f"{self.processes} decoder(s) of {self.worker_memory_bytes // MIB} MiB; at least "
                f"{self.slow_lanes + 1} are needed ({self.slow_lanes} slow lane(s) and one fast)"
            )

    @property
    def processes(self) -> int:
        return self.memory_budget_bytes // self.worker_memory_bytes

    @property
    def fast_lanes(self) -> int:
        return self.processes - self.slow_lanes


class _ForkServer:
    """The `decode_worker` fork server process, started again if it has died."""

    def __init__(self) -> None:
        self._control: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def fork(self, memory_limit_bytes: int) -> tuple[int, socket.socket]:
        """A new worker's process id and the pool's end of its socket."""
        if self._process is None or self._process.poll() is not None:
            self._start()
        assert self._control is not None
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(
                self._control, [memory_limit_bytes.to_bytes(8, "big")], [theirs.fileno()]
            )
            pid = int.from_bytes(decode_worker.receive_exactly(self._control, 8), "big")
        except (OSError, EOFError):
            ours.close()
            self.close()
            raise
        finally:
            theirs.close()
        return pid, ours

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def _start(self) -> None:
        self.close()
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                decode_worker.__name__,
                str(theirs.fileno()),
                str(os.getpid()),
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._control = ours


class _Worker:
    """One decode process and the pool's end of its socket."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self.demoted = False

    def exchange(self, request: bytes) -> tuple[str, object]:
        """Sends one request and waits for its answer (blocking: run it in a thread)."""
        decode_worker.send_frame(self._sock, request)
        answer: tuple[str, object] = pickle.loads(decode_worker.receive_frame(self._sock))
        return answer

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (0 once it is gone)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def demote(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            os.setpriority(os.PRIO_PROCESS, self.pid, SLOW_PRIORITY)
        self.demoted = True

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class DecodePool:
    """Decodes encoded images in worker processes, within `budget`; see the module docstring."""

    def __init__(
        self,
        limits: ImageLimits,
        budget: DecodeBudget,
        *,
        on_stopped: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._limits = limits
        self._budget = budget
        self._on_stopped = on_stopped
        self._fork_server = _ForkServer()
        self._threads = ThreadPoolExecutor(
            max_workers=budget.processes + 1, thread_name_prefix="decode"
        )
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._fast = asyncio.Semaphore(budget.fast_lanes)
        self._slow_in_use = 0
        self._workers: set[_Worker] = set()
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def budget(self) -> DecodeBudget:
        return self._budget

    async def start(self) -> None:
        for _ in range(self._budget.processes):
            self._idle.put_nowait(self._spawn())

    async def close(self) -> None:
        self._closed = True
        for task in list(self._replacing):
            task.cancel()
        for worker in list(self._workers):
            worker.kill()
        self._workers.clear()
        self._fork_server.close()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def decode(
        self, data: bytes, target_size: Size | None, *, timeout: float | None
    ) -> np.ndarray:
        """Pixels of `data`, as `preprocess.decode_image` returns them, within the budgets.

        Raises:
            InvalidImage, LimitExceeded: as `decode_image` does, and LimitExceeded when the
                decode runs over its time or memory budget.
            DeadlineExceeded: the caller's deadline passed while waiting for or decoding it.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        request = pickle.dumps((data, self._limits, target_size), protocol=pickle.HIGHEST_PROTOCOL)
        await _wait_until(self._fast.acquire(), deadline)
        in_fast_lane = True
        try:
            worker = await _wait_until(self._idle.get(), deadline)
            started, cpu_at_start = loop.time(), worker.cpu_seconds()
            job = asyncio.ensure_future(
                loop.run_in_executor(self._threads, worker.exchange, request)
            )
            job.add_done_callback(_retrieve)
            try:
                answer = await self._run_fast(job, worker, started, cpu_at_start, deadline)
                if answer is None:  # moved to a slow lane
                    in_fast_lane = False
                    self._fast.release()
                    try:
                        answer = await self._run(job, worker, started, deadline)
                    finally:
                        self._slow_in_use -= 1
            except BaseException:
                self._replace(worker)
                raise
            if worker.demoted:
                self._replace(worker)
            else:
                self._idle.put_nowait(worker)
            assert answer is not None  # only a fast lane's wait ends with a move
            return _unpack(answer)
        finally:
            if in_fast_lane:
                self._fast.release()

    async def _run_fast(
        self,
        job: asyncio.Future[tuple[str, object]],
        worker: _Worker,
        started: float,
        cpu_at_start: float,
        deadline: float | None,
    ) -> tuple[str, object] | None:
        """The answer, or None once the decode has used slow_after_s of CPU and has moved to a
        slow lane. CPU time, not wall time, marks a costly image: on a busy machine an ordinary
        image may wait longer than that for a core."""
        slow_after = self._budget.slow_after_s
        while True:
            answer = await self._run(job, worker, started, deadline, slow_after_s=slow_after)
            if answer is not None:
                return answer
            used = worker.cpu_seconds() - cpu_at_start
            if used >= self._budget.slow_after_s:
                self._move_to_slow_lane(worker)
                return None
            elapsed = asyncio.get_running_loop().time() - started
            slow_after = elapsed + max(_RECHECK_S, self._budget.slow_after_s - used)

    def _move_to_slow_lane(self, worker: _Worker) -> None:
        if self._slow_in_use >= self._budget.slow_lanes:
            self._stopped(worker, STOPPED_SLOW_LANES_FULL)
            raise LimitExceeded(
                f"decoding the image takes more than {self._budget.slow_after_s:g} s of CPU and "
                "the server is busy with other costly images; retry later, or send a smaller "
                "image"
            )
        self._slow_in_use += 1
        worker.demote()

    async def _run(
        self,
        job: asyncio.Future[tuple[str, object]],
        worker: _Worker,
        started: float,
        deadline: float | None,
        *,
        slow_after_s: float | None = None,
    ) -> tuple[str, object] | None:
        """The answer, or None when `slow_after_s` has passed first (the decode goes on)."""
        loop = asyncio.get_running_loop()
        budget_end = started + self._budget.time_s
        ends = [budget_end] if deadline is None else [budget_end, deadline]
        if slow_after_s is not None:
            ends.append(started + slow_after_s)
        try:
            done, _ = await asyncio.wait({job}, timeout=max(0.0, min(ends) - loop.time()))
        except asyncio.CancelledError:
            self._stopped(worker, STOPPED_CANCELLED)
            raise
        if done:
            try:
                return job.result()
            except (EOFError, OSError) as exc:
                self._stopped(worker, STOPPED_WORKER_DIED)
                raise LimitExceeded(
                    "the decoder stopped on this image: it needs more than the "
                    f"{self._budget.worker_memory_bytes // MIB} MiB one decode may use, or it "
                    "is corrupt in a way the codec cannot survive; send a smaller image or a "
                    "standard JPEG or PNG"
                ) from exc
        now = loop.time()
        if deadline is not None and now >= deadline and deadline <= budget_end:
            self._stopped(worker, STOPPED_DEADLINE)
            raise DeadlineExceeded(
                f"the call's deadline passed after {now - started:.2f} s of decoding the image"
            )
        if now >= budget_end:
            self._stopped(worker, STOPPED_TIME)
            raise LimitExceeded(
                f"decoding the image took longer than its budget of {self._budget.time_s:g} s; "
                "send a smaller image or a standard (baseline) JPEG or PNG"
            )
        return None

    def _stopped(self, worker: _Worker, reason: str) -> None:
        worker.kill()
        self._on_stopped(reason)
        log.info("decode stopped (%s); its decoder is replaced", reason)

    def _spawn(self) -> _Worker:
        # On the event loop's thread only: a fork takes a millisecond or two (the first one
        # waits for the fork server to import the decoder).
        worker = _Worker(*self._fork_server.fork(self._budget.worker_memory_bytes))
        self._workers.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        """Kills `worker` (if it still runs) and starts another in its place."""
        worker.kill()
        self._workers.discard(worker)
        if self._closed:
            return
        task = asyncio.ensure_future(self._respawn())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _respawn(self) -> None:
        for pause in (0.0, 0.1, 0.5, 1.0, 2.0):
            await asyncio.sleep(pause)
            try:
                worker = self._spawn()
            except (OSError, EOFError):
                log.exception("could not start a decode process; retrying")
                continue
            self._idle.put_nowait(worker)
            return
        log.error("could not start a decode process; decoding runs with one fewer")


async def _wait_until(awaitable: Awaitable[T], deadline: float | None) -> T:
    loop = asyncio.get_running_loop()
    timeout = None if deadline is None else max(0.0, deadline - loop.time())
    started = time.monotonic()
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise DeadlineExceeded(
            f"the call's deadline passed after {time.monotonic() - started:.2f} s of waiting "
            "for a free decoder; the server is decoding other images"
        ) from None


def _retrieve(job: asyncio.Future[tuple[str, object]]) -> None:
    # A killed decoder's exchange ends in EOFError, which nobody awaits: read it here so that
    # asyncio does not log it as never retrieved.
    if not job.cancelled():
        job.exception()


def _unpack(answer: tuple[str, object]) -> np.ndarray:
    kind, value = answer
    if kind == decode_worker.OK:
        assert isinstance(value, np.ndarray)
        return value
    message = str(value)
    if kind == decode_worker.INVALID:
        raise InvalidImage(message)
    raise LimitExceeded(message)
