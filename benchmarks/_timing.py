"""Repeated measurements for the benchmark scripts: every figure is the median of
``--repeats`` runs, printed with its spread.

A figure is printed as ``median (min–max over N runs)``, the form the README quotes; with
five runs or more the interquartile range follows (``IQR a–b``). One slow run among three
(another job on the machine, a cold cache) then shows as a wide range instead of passing for
the figure.

    from _timing import add_repeats_option, repeat, spread

    seconds = repeat(lambda: index.search(queries, 10), args.repeats)
    print("batched", spread([len(queries) / s for s in seconds]).format("{:,.0f}", " q/s"))
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: runs per figure unless ``--repeats`` says otherwise
DEFAULT_REPEATS = 3


def repeat(fn: Callable[[], object], n: int) -> list[float]:
    """Wall seconds (``time.perf_counter``) of ``n`` calls of ``fn``, in call order."""
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def repeat_with_cpu(fn: Callable[[], object], n: int) -> tuple[list[float], list[float]]:
    """Wall seconds and this process's CPU seconds of ``n`` calls of ``fn``. CPU over wall
    is the number of cores a call kept busy (see :func:`cores_busy`)."""
    walls, cpus = [], []
    for _ in range(n):
        cpu0, started = cpu_seconds(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu0)
    return walls, cpus


def cores_busy(walls: Sequence[float], cpus: Sequence[float]) -> Spread:
    """Cores kept busy in each run (CPU seconds over wall seconds). On a quiet machine a
    multi-threaded step keeps every core it may use busy; well under that, other jobs
    took the rest, and the run's time says more about them than about kmervae."""
    return spread(c / w for w, c in zip(walls, cpus, strict=True))


def repeat_results(fn: Callable[[], T], n: int) -> list[T]:
    """What ``n`` calls of ``fn`` return, in call order: for a function that measures
    itself (a fresh process's wall time and peak RSS, say)."""
    return [fn() for _ in range(n)]


@dataclass(frozen=True)
class Spread:
    """The runs of one figure."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return float(min(self.values))

    @property
    def high(self) -> float:
        return float(max(self.values))

    def quartiles(self) -> tuple[float, float]:
        """First and third quartiles (inclusive method; needs two runs or more)."""
        q1, _, q3 = statistics.quantiles(self.values, n=4, method="inclusive")
        return float(q1), float(q3)

    def format(self, fmt: str = "{:.2f}", unit: str = "") -> str:
        """``median (min–max over N runs)``, each number through ``fmt``; ``unit`` follows
        the median and the range (``"1.20 s (1.10–1.40 s over 3 runs)"``)."""
        n = len(self.values)
        med = fmt.format(self.median) + unit
        if n == 1:
            return f"{med} (1 run)"
        text = f"{med} ({fmt.format(self.low)}–{fmt.format(self.high)}{unit} over {n} runs"
        if n >= 5:
            q1, q3 = self.quartiles()
            text += f", IQR {fmt.format(q1)}–{fmt.format(q3)}"
        return text + ")"


def spread(values: Iterable[float]) -> Spread:
    """The :class:`Spread` of one figure's runs (at least one)."""
    got = tuple(float(v) for v in values)
    if not got:
        raise ValueError("no runs to summarise")
    return Spread(got)


def rates(count: float, seconds: Sequence[float]) -> list[float]:
    """``count`` per second for every run (items/s from wall times)."""
    return [count / s for s in seconds]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_repeats_option(
    parser: argparse.ArgumentParser, default: int = DEFAULT_REPEATS, what: str = "figure"
) -> None:
    """``--repeats N``: runs per figure (median and spread printed)."""
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=default,
        help=f"runs per {what}; the median and the min–max range are printed (default {default})",
    )


def runs_note(n: int) -> str:
    """How the figures of ``n`` runs are printed, for a report's first line."""
    return "1 run a figure" if n == 1 else f"each figure: median (min–max over {n} runs)"


def machine() -> str:
    """The CPU, how many the machine has, how many this process may use (affinity mask,
    cgroup quota): what every report starts with."""
    from kmervae.cores import available_threads, cgroup_cpu_quota, cpu_name

    quota = cgroup_cpu_quota()
    limit = "" if quota is None else f", cgroup quota {quota:g} CPUs"
    return f"{cpu_name()}, {os.cpu_count()} CPUs, {available_threads()} usable{limit}"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, for the report of a run (other jobs on the
    machine widen the spread)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
