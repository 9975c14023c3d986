"""CPU use of process groups, read from /proc: what bench/roulette.py
charges to gunicorn, the worker, the load generators and Redis.

Linux only; each figure is utime + stime in clock ticks, so a process's
CPU counts whatever the wall clock (a noisy machine) did meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry.name))
    return children


def process_tree(roots: list[int]) -> set[int]:
    children = _proc_children()
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def pids_named(name: str) -> set[int]:
    """Processes whose command name is `name` (e.g. redis-server)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _pid_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """CPU use over an interval: the machine's, and that of groups of ours.

    A sampler thread reads each process's CPU time twice a second, so a
    process that exits before the interval ends still counts (up to its
    last sample).
    """

    def __init__(self, groups: dict[str, Callable[[], set[int]]]) -> None:
        # name -> function returning the pids of that group now
        self.groups = groups
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for name, fn in self.groups.items():
            seen = self.last[name]
            for pid in fn():
                ticks = _pid_ticks(pid)
                if ticks:
                    seen[pid] = max(seen.get(pid, 0), ticks)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.machine0 = _machine_ticks()
        self.first = {
            name: {pid: _pid_ticks(pid) for pid in fn()}
            for name, fn in self.groups.items()
        }
        self.last = {name: dict(ticks) for name, ticks in self.first.items()}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        self._sample()
        elapsed = time.monotonic() - self.t0
        busy1, total1 = _machine_ticks()
        busy0, total0 = self.machine0
        cpus = os.cpu_count() or 1
        machine = (busy1 - busy0) / max(1, total1 - total0) * cpus
        parts = []
        ours = 0.0
        hz = os.sysconf("SC_CLK_TCK")
        # CPU seconds per group, for figures per lead.
        self.seconds: dict[str, float] = {}
        for name in self.groups:
            first = self.first[name]
            used = sum(
                ticks - first.get(pid, 0) for pid, ticks in self.last[name].items()
            )
            self.seconds[name] = used / hz
            cores = used / hz / elapsed
            ours += cores
            # Per process too, where a group has several busy ones: gunicorn
            # workers do not share connections evenly, nor the GIL.
            each = sorted(
                (
                    (ticks - first.get(pid, 0)) / hz / elapsed
                    for pid, ticks in self.last[name].items()
                ),
                reverse=True,
            )
            busy = [f"{c:.2f}" for c in each if c >= 0.01]
            split = f" ({' + '.join(busy)})" if len(busy) > 1 else ""
            parts.append(f"{name} {cores:.2f}{split}")
        return (
            f"CPU over {elapsed:.0f} s (cores busy of {cpus}): machine "
            f"{machine:.2f}, "
            + ", ".join(parts)
            + f", other processes {max(0.0, machine - ours):.2f}"
        )


def sockets_per_process(port: int, pids: list[int]) -> list[int]:
    """Established TCP connections on the server's port held by each pid."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":
                inodes.add(fields[9])
    counts = []
    for pid in pids:
        n = 0
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                n += 1
        counts.append(n)
    return counts
