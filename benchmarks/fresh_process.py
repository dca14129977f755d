"""Wall time and peak RSS of one fresh ``python -m kmervae ...`` process, for the benchmarks.

A small launcher process spawns kmervae and reads its resources with ``os.wait4``. The
launcher matters: Linux carries the peak RSS of the parent over fork and exec into the
child, so spawning from a benchmark process that already holds an index or a matrix would
report that memory as kmervae's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(
    sys.executable, [sys.executable, "-m", "kmervae", *sys.argv[1:]], os.environ,
    file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status), cpu]))
"""


def whole_process_usage(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system, every thread) of one
    fresh ``python -m kmervae ARGS`` process; its standard output is discarded, its
    standard error passes through on failure. CPU over wall is the number of cores the
    process kept busy: well under the cores it may use means other jobs took the rest."""
    result = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"launcher failed:\n{result.stderr}")
    seconds, rss_kib, code, cpu = json.loads(result.stdout)
    if code != 0:
        raise SystemExit(f"kmervae {' '.join(args)} failed:\n{result.stderr}")
    return seconds, rss_kib / 1024, cpu  # Linux reports KiB


def whole_process(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh ``python -m kmervae ARGS`` process
    (:func:`whole_process_usage` without the CPU time)."""
    seconds, rss_mib, _ = whole_process_usage(args)
    return seconds, rss_mib


def whole_process_tree(args: list[str], every: float = 0.2) -> tuple[float, float, float]:
    """As :func:`whole_process`, plus the peak of the summed RSS of kmervae and every
    program it starts (mcl, say), sampled every ``every`` seconds with psutil: (wall
    seconds, peak RSS of the largest process, peak RSS of the whole tree), both in MiB."""
    import psutil

    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        me = psutil.Process()
        while not done.is_set():
            total = 0
            for proc in me.children(recursive=True):
                try:
                    if proc.cmdline()[1:3] == ["-c", _LAUNCHER]:
                        continue  # the launcher itself
                    total += proc.memory_info().rss
                except (psutil.Error, IndexError):
                    pass
            peak = max(peak, total / 2**20)
            time.sleep(every)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        seconds, largest = whole_process(args)
    finally:
        done.set()
        watcher.join()
    return seconds, largest, peak
