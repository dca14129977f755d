"""How many cores kmervae uses: the affinity mask, capped by a cgroup CPU quota."""

from __future__ import annotations

import os

import pytest

from kmervae import cores


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4.0),
        ({}, None),
        ({"cpu.max": "garbage\n"}, None),
    ],
)
def test_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cores.cgroup_cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [(None, None), (1.5, 2), (0.2, 1), (1e6, None)])
def test_available_threads_is_the_mask_capped_by_the_quota(monkeypatch, quota, expected):
    mask = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cores, "cgroup_cpu_quota", lambda: quota)
    assert cores.available_threads() == (mask if expected is None else min(mask, expected))
