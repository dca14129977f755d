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

_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(
    sys.executable, [sys.executable, "-m", "kmervae", *sys.argv[1:]], os.environ,
    file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
print(json.dumps([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


def whole_process(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh ``python -m kmervae ARGS`` process;
    its standard output is discarded, its standard error passes through on failure."""
    result = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"launcher failed:\n{result.stderr}")
    seconds, rss_kib, code = json.loads(result.stdout)
    if code != 0:
        raise SystemExit(f"kmervae {' '.join(args)} failed:\n{result.stderr}")
    return seconds, rss_kib / 1024  # Linux reports KiB
