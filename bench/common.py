"""Helpers every benchmark shares: ports, child processes, CPU accounting, tables and results.

Benchmarks run their servers and clients as separate processes, so that neither shares the other's
GIL, and measure each process's CPU time with psutil over the same wall-clock window. On a noisy
machine absolute figures wander; report ratios (delivered/offered, value/target) beside them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SHARED_ENV = "ARMONIK_OBSERVE_SHARED"


class BenchError(RuntimeError):
    """A benchmark cannot run: a tool is missing, or a child process failed to start."""


# ------------------------------------------------------------------------------------ locations


def shared_dir() -> Path:
    """The `shared/` checkout beside the repository (CI layout), or $ARMONIK_OBSERVE_SHARED."""
    beside = Path(__file__).resolve().parents[2] / "shared"
    if beside.is_dir():
        return beside
    env = os.environ.get(SHARED_ENV)
    if env and Path(env).is_dir():
        return Path(env)
    raise BenchError(f"no shared/ directory at {beside}; set {SHARED_ENV} to its path")


def shared_tool(relative: str) -> Path:
    """A file of the shared checkout, e.g. `tools/bare_receive.py`."""
    path = shared_dir() / relative
    if not path.is_file():
        raise BenchError(f"missing shared tool {path}")
    return path


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


# ---------------------------------------------------------------------------- tables, results


@dataclass
class Row:
    """One line of a result table: a figure, its target (if any) and how it compares."""

    metric: str
    value: float | str
    unit: str = ""
    target: float | str | None = None
    verdict: str = ""

    def cells(self) -> list[str]:
        """The row as table cells."""
        return [self.metric, f"{fmt(self.value)} {self.unit}".strip(),
                "" if self.target is None else f"{fmt(self.target)} {self.unit}".strip(),
                self.verdict]


def fmt(value: float | str) -> str:
    """A number with a precision that suits its size; strings unchanged."""
    if isinstance(value, str):
        return value
    if value == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def ratio_verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    """'x0.85 LOW' style comparison of a value with its target."""
    if not target:
        return ""
    ratio = value / target
    ok = ratio >= 1.0 if higher_is_better else ratio <= 1.0
    return f"x{ratio:.2f} {'ok' if ok else 'LOW' if higher_is_better else 'HIGH'}"


def format_table(rows: Sequence[Row], title: str = "") -> str:
    """Rows as an aligned plain-text table with a header: metric, value, target, ratio/ok."""
    header = ["metric", "value", "target", "ratio/ok"]
    cells = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(parts: Sequence[str]) -> str:
        first, *numbers = parts
        aligned = [first.ljust(widths[0])]
        aligned += [p.rjust(w) for p, w in zip(numbers[:2], widths[1:3], strict=True)]
        aligned.append(numbers[2].ljust(widths[3]))
        return "  ".join(aligned).rstrip()

    out = [title] if title else []
    out += [line(header), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


def print_table(rows: Sequence[Row], title: str = "") -> None:
    """Print `format_table(rows, title)` and flush."""
    print(format_table(rows, title), flush=True)


def git_revision() -> str:
    """The repository's commit, with '+dirty' when tracked files have changed; '' without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=REPO_DIR, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=REPO_DIR, check=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """What a result depends on: code revision, machine, Python and the load when it ran."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": load,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write `bench/results/<name>.json` (with the environment added) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "environment": environment(), **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path
