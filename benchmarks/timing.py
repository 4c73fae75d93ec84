"""Timing helpers shared by the benchmark scripts.

Competitors are timed side by side: each is calibrated to an inner loop count so that one
sample lasts about ``sample_s``, then every competitor takes one sample in turn, the order
rotated by one each repeat, so that noise from a shared machine hits all of them alike.
Report medians over the repeats and ratios between competitors, never a lone absolute time.
"""

from __future__ import annotations

import datetime
import gc
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None


def calibrate(fn: Callable[[], Any], sample_s: float) -> int:
    """Inner loop count so that one sample of ``fn`` lasts about ``sample_s`` seconds."""
    t0 = time.perf_counter()
    fn()  # warm up
    if time.perf_counter() - t0 >= sample_s:  # one call is already long enough
        return 1
    n, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= 0.2 * sample_s or n >= 1 << 20:
            break
        n *= 10
    return max(1, round(n * sample_s / elapsed))


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    return 0 if resource is None else resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def take_sample(fn: Callable[[], Any], inner: int) -> tuple[float, float]:
    """Seconds and minor page faults per call of ``fn``, averaged over ``inner`` calls.

    The garbage collector is disabled meanwhile, as ``timeit`` does.  Page faults are
    counted because freshly mapped memory for large temporaries is a real cost of an
    allocation-heavy call (glibc hands large freed arrays back to the OS).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        f0 = minor_faults()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        elapsed = time.perf_counter() - t0
        return elapsed / inner, (minor_faults() - f0) / inner
    finally:
        if enabled:
            gc.enable()


def interleave(
    competitors: dict[str, Callable[[], Any]],
    sample_s: float,
    repeats: int,
    min_repeats: int | None = None,
    budget_s: float = float("inf"),
) -> tuple[dict[str, int], dict[str, list[float]], dict[str, list[float]]]:
    """Calibrate each competitor, then take one sample of each in turn, ``repeats`` times.

    Stops early (after at least ``min_repeats``, default all) once ``budget_s`` seconds have
    gone.  Returns the inner loop counts, and per competitor the seconds per call and the
    minor page faults per call of every sample.
    """
    names = list(competitors)
    inner = {name: calibrate(competitors[name], sample_s) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[float]] = {name: [] for name in names}
    min_repeats = repeats if min_repeats is None else min_repeats
    t_start = time.perf_counter()
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the start
            seconds, per_call = take_sample(competitors[name], inner[name])
            samples[name].append(seconds)
            faults[name].append(per_call)
        if r + 1 >= min_repeats and time.perf_counter() - t_start > budget_s:
            break
    return inner, samples, faults


def medians(
    competitors: dict[str, Callable[[], Any]],
    sample_s: float,
    repeats: int,
    min_repeats: int | None = None,
    budget_s: float = float("inf"),
) -> dict[str, float]:
    """Median seconds per call of each competitor, sampled in turn by :func:`interleave`."""
    _, samples, _ = interleave(competitors, sample_s, repeats, min_repeats, budget_s)
    return {name: statistics.median(s) for name, s in samples.items()}


def fmt_time(seconds: float | None) -> str:
    """``12.3 µs``, ``4.56 ms``, ``1.23 s``, ``2.5 min`` or ``1.2 h``; ``n/a`` if missing."""
    if seconds is None:
        return "n/a"
    for unit, scale, limit in (("µs", 1e-6, 1e-3), ("ms", 1e-3, 1.0), ("s", 1.0, 60.0)):
        if seconds < limit:
            return f"{seconds / scale:.3g} {unit}"
    if seconds < 3600.0:
        return f"{seconds / 60.0:.3g} min"
    return f"{seconds / 3600.0:.3g} h"


def load_average() -> str:
    """The 1/5/15-minute load averages, or ``n/a`` where the OS has none."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def run_stamp() -> str:
    """``- date: <ISO time>; code: commit <sha>`` (``+ uncommitted changes`` when the code
    differs from that commit), a markdown bullet line that ties a benchmark's output to the code
    it ran. Only the code counts (``nncore/``, ``benchmarks/`` without its ``results/``,
    ``pyproject.toml``): the outputs and the plot the benchmarks write do not make a run dirty."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # pathspecs below are
    try:  # relative to the repository root
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "nncore",
                "benchmarks",
                "pyproject.toml",
                ":!benchmarks/results",
            ],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        sha, dirty = "", ""
    code = (
        f"commit {sha}" + (" + uncommitted changes" if dirty else "") if sha else "not a git tree"
    )
    return f"- date: {now}; code: {code}"
