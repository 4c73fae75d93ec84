"""How fast can anything built on Dask answer: the round trips under DaskObjective's overhead.

``bench_distributed.py`` measures DaskObjective's fixed cost per evaluation and "Dask's
floor": the same evaluation (a scatter, one graph of chunk tasks and their sum, a gather)
with chunk tasks that do nothing.  The floor stays above the 20 ms per evaluation aimed at
with 8 chunks.  This script times the pieces on a LocalCluster of process workers (one
thread each), interleaved, medians:

* ``submit(no-op).result()``: one task through the scheduler and back;
* ``scatter(theta, broadcast=True)``: theta (64-64-10's 4,810 floats) to every worker;
* a graph of ``chunks`` no-op tasks and their sum, computed and gathered;
* a method call on a Dask actor (``submit(..., actor=True)``), and one call per worker,
  together: as Dask sends it (through the scheduler, which forwards the call and its answer,
  unless the client was made with ``direct_to_workers=True``), and straight to the worker
  (``actor_execute`` on the client's connection to it, as ``DaskObjective`` calls its
  actors).

The question: what would a design that talks to the workers directly (actors) save per
evaluation, against what it would have to rebuild (an actor lost with its worker is not
recomputed by Dask; nncore would have to recreate it and reload its chunks)?  So the script
also times the traffic of a large network's evaluation through an actor (theta in, 8, 1
or no gradients out), and kills an actor's worker during a call and before one, and says
what the client saw.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/dask_round_trips.py
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_distributed import interleaved  # noqa: E402
from harness import load_average, run_stamp  # noqa: E402


def noop(x=None):
    return x


def add(*parts):
    return sum(p for p in parts if p is not None) if parts else 0


class Host:
    """An actor: a worker-resident object whose methods the client calls directly."""

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, theta):
        self.calls += 1
        return 0.0, np.zeros_like(theta)

    def reply(self, theta, rows):
        """theta in, ``rows`` vectors of its size out: the traffic of one evaluation."""
        self.calls += 1
        return np.zeros((rows, theta.size))

    def pid(self, seconds=0.0):
        time.sleep(seconds)
        return os.getpid()


def direct(client, actors, method, *args):
    """``actor.method(*args)`` on every one of ``actors`` together, each call sent straight
    to its actor's worker (not through the scheduler), as ``DaskObjective`` calls its
    actors (``nncore.distributed._actor_call``); the answers."""
    from nncore.distributed import _actor_call

    calls = [_actor_call(client, a._address, a.key, method, *args) for a in actors]
    return [c.result() for c in calls]


def faults(wait: float) -> None:
    """What an actor call does when its worker dies: during the call, and after."""
    import distributed

    print(f"\nan actor's worker killed (SIGKILL), calls waiting at most {wait} s:\n")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        address = sorted(client.scheduler_info()["workers"])[0]
        host = client.submit(Host, actor=True, workers=[address], pure=False).result()
        pid = host.pid().result()
        for when, call in (("during the call", 3.0), ("before the call", 0.0)):
            future = host.pid(call) if when == "during the call" else None
            if when == "during the call":
                threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
            t0 = time.perf_counter()
            try:
                (future or host.pid()).result(timeout=wait)
                outcome = "returned"
            except Exception as err:  # what the client sees
                outcome = f"{type(err).__name__}: {str(err)[:60]}"
            print(f"- killed {when}: {outcome} after {time.perf_counter() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--wait", type=float, default=10.0, help="faults: seconds per call")
    args = parser.parse_args()
    import dask
    import distributed

    print(run_stamp())
    print(f"- load average at start: {load_average()}")
    print(
        f"\nmedians of {args.repeats} interleaved calls, ms; theta: 4,810 float64 "
        f"(64-64-10); graph: {args.chunks} no-op tasks and their sum\n"
    )
    print(
        "| workers | submit(no-op).result() | scatter theta, broadcast | graph of no-ops, "
        "computed and gathered | actor call, one worker | actor calls, every worker "
        "| straight to the worker: one | straight: every worker |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    theta = np.zeros(4810)
    for w in (1, 2):
        with (
            distributed.LocalCluster(
                n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            workers = sorted(client.scheduler_info()["workers"])
            hosts = [
                client.submit(Host, actor=True, workers=[a], pure=False).result() for a in workers
            ]

            def graph():
                parts = [
                    dask.delayed(noop, pure=False)(i, dask_key_name=f"noop-{time.time_ns()}-{i}")
                    for i in range(args.chunks)
                ]
                client.gather(client.compute(dask.delayed(add)(*parts), optimize_graph=False))

            fns = {
                "submit": lambda: client.submit(noop, 1, pure=False).result(),
                "scatter": lambda: client.scatter(theta, broadcast=True, hash=False),
                "graph": graph,
                "actor": lambda: hosts[0].evaluate(theta).result(),
                "actors": lambda: [f.result() for f in [h.evaluate(theta) for h in hosts]],
                "direct": lambda: direct(client, hosts[:1], "evaluate", theta),
                "directs": lambda: direct(client, hosts, "evaluate", theta),
            }
            t = interleaved(fns, args.repeats)
            names = ("submit", "scatter", "graph", "actor", "actors", "direct", "directs")
            print(f"| {w} | " + " | ".join(f"{1e3 * t[k]:.2f}" for k in names) + " |")
    traffic(args.repeats)
    faults(args.wait)


def traffic(repeats: int) -> None:
    """784-256-128-10's vectors (235,146 float64, 1.9 MB) through actor calls: theta to one
    worker and 8 or 1 vectors back, as a direct evaluation with 8 chunks moves them."""
    import distributed

    theta = np.zeros(235_146)
    print(
        f"\n784-256-128-10's theta to the actor of one worker and vectors of its size back, "
        f"ms (medians of {repeats} interleaved calls):\n"
    )
    print("| the call | theta in, 8 out | theta in, 1 out | theta in, none out |")
    print("| --- | --- | --- | --- |")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        (address,) = client.scheduler_info()["workers"]
        host = client.submit(Host, actor=True, workers=[address], pure=False).result()
        fns = {}
        for rows in (8, 1, 0):
            fns[rows] = lambda rows=rows: host.reply(theta, rows).result()
            fns[f"direct{rows}"] = lambda rows=rows: direct(client, [host], "reply", theta, rows)
        t = interleaved(fns, repeats)
        print(
            "| through the scheduler | " + " | ".join(f"{1e3 * t[r]:.2f}" for r in (8, 1, 0)) + " |"
        )
        print(
            "| straight to the worker | "
            + " | ".join(f"{1e3 * t[f'direct{r}']:.2f}" for r in (8, 1, 0))
            + " |"
        )


if __name__ == "__main__":
    main()
