"""Helpers every benchmark shares: ports, child processes, CPU accounting.

Benchmarks run their servers and clients as separate processes, so that neither shares the other's
GIL, and measure each process's CPU time with psutil over the same wall-clock window. On a noisy
machine absolute figures wander; report ratios (delivered/offered, value/target) beside them.
Tables and results are in `bench.report`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


class BenchError(RuntimeError):
    """A benchmark cannot run: a tool is missing, or a child process failed to start."""


# ------------------------------------------------------------------------------------ commands


def cli_command(*args: str) -> list[str]:
    """The command line running `armonik-observe ARGS` with this interpreter's environment.

    `python -m armonik_observe.cli` does nothing (the module has no `__main__` guard), so prefer
    the console script installed next to `sys.executable` and fall back to calling `main()`.
    """
    script = Path(sys.executable).parent / "armonik-observe"
    if script.is_file():
        return [str(script), *args]
    code = "import sys; from armonik_observe.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, *args]


# ---------------------------------------------------------------------------------------- ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on `host` (another process may still take it before you do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------ child processes


@dataclass
class Child:
    """A child process started by `spawn`; `ready` holds its readiness line, if one was awaited."""

    proc: subprocess.Popen[str]
    name: str
    stderr: IO[bytes]
    ready: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the process wrote on stderr (kept in a temporary file, never a pipe)."""
        with contextlib.suppress(OSError, ValueError):
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""


def start_process(
    cmd: Sequence[str],
    *,
    name: str = "",
    port: int | None = None,
    host: str = "127.0.0.1",
    ready_prefix: str | None = None,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Child:
    """Start `cmd` and wait until it accepts connections on `port` and/or prints `ready_prefix`.

    stdout is a pipe, drained by a daemon thread (the readiness line is taken from it) so that a
    chatty child never blocks; stderr goes to a temporary file, quoted when the process dies
    early. Raises BenchError on exit or timeout.
    """
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - stop_process closes it
    proc = subprocess.Popen(  # the command is built by the benchmark, never from user input
        list(cmd), stdout=subprocess.PIPE, stderr=stderr, text=True,
        env={**os.environ, **(env or {})}, cwd=REPO_DIR,
    )
    child = Child(proc, name or Path(cmd[0]).name, stderr)
    found = _drain(child, ready_prefix or "\0")
    deadline = time.monotonic() + timeout
    try:
        if ready_prefix is not None:
            child.ready = _await_line(child, found, ready_prefix, deadline)
        if port is not None:
            while not port_open(host, port):
                _check_alive(child)
                if time.monotonic() > deadline:
                    raise BenchError(f"{child.name} did not open {host}:{port} in {timeout}s")
                time.sleep(0.05)
    except BaseException:
        stop_process(child)
        raise
    return child


def _drain(child: Child, prefix: str) -> queue.Queue[str]:
    """Read the child's stdout to its end in a daemon thread; put the first `prefix` line."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        stdout = child.proc.stdout
        assert stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in stdout:
                if found.empty() and line.startswith(prefix):
                    found.put(line.strip())

    threading.Thread(target=read, daemon=True, name=f"stdout-{child.pid}").start()
    return found


def _await_line(child: Child, found: queue.Queue[str], prefix: str, deadline: float) -> str:
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            return found.get(timeout=0.05)
        _check_alive(child)
    raise BenchError(f"{child.name} printed no line starting with {prefix!r} in time")


def _check_alive(child: Child) -> None:
    if child.proc.poll() is not None:
        raise BenchError(
            f"{child.name} exited with code {child.proc.returncode}:\n{child.stderr_tail()}"
        )


def stop_process(child: Child, timeout: float = 5.0) -> int | None:
    """SIGTERM the child (only that pid), then SIGKILL it if it lingers; return its exit code."""
    proc = child.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    with contextlib.suppress(OSError, ValueError):
        child.stderr.close()
    return proc.returncode


@contextlib.contextmanager
def running(cmd: Sequence[str], **kwargs: Any) -> Iterator[Child]:
    """`start_process` as a context manager that always stops the child."""
    child = start_process(cmd, **kwargs)
    try:
        yield child
    finally:
        stop_process(child)


def run_json(cmd: Sequence[str], timeout: float) -> tuple[dict[str, Any], float]:
    """Run a command that prints one JSON line; return it and the monotonic time it exited."""
    done = subprocess.run(  # the command is built by the benchmark
        list(cmd), capture_output=True, text=True, timeout=timeout, cwd=REPO_DIR, check=False
    )
    ended = time.monotonic()
    if done.returncode != 0:
        raise BenchError(f"{cmd[1] if len(cmd) > 1 else cmd[0]} failed ({done.returncode}): "
                         f"{done.stderr.strip()[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"no JSON line in the output of {cmd}: {done.stdout[-500:]!r}")
    return json.loads(lines[-1]), ended


# ---------------------------------------------------------------------------------------- CPU


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process (all its threads), so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy (not idle nor waiting for I/O), so far."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuSampler:
    """Samples CPU time in a background thread, to read it over any later window.

    `pid` names the process to follow; None follows the whole machine (busy seconds summed over
    every core), to tell how much CPU other processes took meanwhile. Use when the window is only
    known afterwards (e.g. a client reports how long it measured): `cpu_between(t0, t1)`
    interpolates between the samples around t0 and t1 (monotonic clock).
    """

    def __init__(self, pid: int | None, interval: float = 0.05) -> None:
        self._process = psutil.Process(pid) if pid is not None else None
        self._interval = interval
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"cpu-{pid}")

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Take a last sample and stop sampling."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            if self._process is None:
                busy = machine_busy_seconds()
            else:
                times = self._process.cpu_times()
                busy = float(times.user + times.system)
            self._samples.append((time.monotonic(), busy))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def cpu_at(self, when: float) -> float:
        """Interpolated CPU seconds used by the process at monotonic time `when`."""
        samples = self._samples
        if not samples:
            raise BenchError("no CPU samples")
        if when <= samples[0][0]:
            return samples[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if t0 <= when <= t1:
                return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)
        return samples[-1][1]

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used between two monotonic times."""
        return self.cpu_at(end) - self.cpu_at(start)


@dataclass
class Window:
    """Wall and CPU seconds of this process (every thread) and of the others, over a block."""

    wall: float = 0.0
    cpu: float = 0.0
    other_cpu: float = 0.0

    @property
    def other_share(self) -> float:
        """Cores other processes kept busy meanwhile."""
        return max(self.other_cpu, 0.0) / max(self.wall, 1e-9)


@contextlib.contextmanager
def window() -> Iterator[Window]:
    """Measure the block's wall time, this process's CPU and the rest of the machine's."""
    measured = Window()
    busy0, cpu0, wall0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    yield measured
    measured.wall = time.perf_counter() - wall0
    measured.cpu = time.process_time() - cpu0
    measured.other_cpu = machine_busy_seconds() - busy0 - measured.cpu


def per_s(count: float, seconds: float) -> float:
    """count / seconds, rounded; 0 for an empty window."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it holds; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)


def fresh_dir(root: Path, name: str) -> Path:
    """An empty directory `name` under root (removed first if present; not created)."""
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    return path
