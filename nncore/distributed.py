"""The objective of :mod:`nncore.objective` on a Dask cluster: :class:`DaskObjective`.

This module owns the distributed layer and nothing numerical: the partial sums of every
chunk of rows come from the chunk passes of :mod:`nncore.objective` (``chunk_forward``,
``chunk_grad``, ``chunk_product``), the same functions the chunked in-memory
:class:`~nncore.objective.Objective` runs.  The layer only moves theta and partial sums
(the dask-glm pattern, and Spark's broadcast + ``treeAggregate``):

1. Setup, once: the rows of ``X``, ``y`` and the weights, as row chunks of dask arrays, are
   validated on the workers chunk by chunk (the in-memory checks and messages, plus the
   chunk's row range) and kept in worker memory (``persist``); the weight total
   ``sum_i w_i`` is added from the chunks' totals (a reduction of one float per chunk), and
   each chunk stores its rows' ``omega_i = w_i / sum_j w_j`` (``1 / N`` without weights),
   as the chunked ``Objective`` does.
2. Per evaluation, straight to the workers (``direct=True``, when the partial sums of all
   chunks take at most :data:`DIRECT_BYTES`): one Dask actor per worker (:class:`_Host`)
   holds the chunks that live there (persisted chunks are placed in runs of consecutive
   chunks, one run per worker); the client calls each once, directly (not through the
   scheduler, which Dask's own actor calls go through by default), with theta (and ``v``
   for a product) at the first call at a point.  Each actor evaluates its chunks' partial
   sums (``sum omega_i l_i``, the gradient or product without l2), adds those of every
   node of the tree (below) whose chunks it holds all, and answers the nodes: one vector
   per worker when its chunks are one run.  The client adds the nodes up the tree and adds
   the l2 term.  No graph, no scheduler: a few ms per evaluation, where a graph costs Dask
   20-60 ms on a small machine.  When an actor's worker is lost, the evaluation goes
   through the graph instead, and new actors are made at the next one.
3. Per evaluation, through the scheduler (the graph path: ``direct=False``, larger
   partial sums, the full Hessian, or after a fault): theta (and ``v``) is scattered to
   every worker once (``broadcast=True``, both in one request); each chunk's task returns
   its partial sums; tasks of :data:`FAN_IN` consecutive ones add them up the tree, on the
   workers and, for small networks, its root on the client (:data:`CLIENT_SUM_BYTES`),
   which so receives at most ``FAN_IN`` tuples of ``n_params`` floats and a scalar,
   whatever ``N``.  The chunks' tasks and the tree go to the scheduler as one graph, and
   the client gathers once: a scatter, a graph and a gather per evaluation.

The tree is fixed by the number of chunks alone: neighbouring partial sums are added in
pairs, level by level, an odd last one carried up (:func:`_add`).  Its nodes are the sums of
aligned blocks of consecutive chunks, so wherever a node is added (an actor, a graph task,
the client) it gets the same bits, and a chunk gives the same bits on any worker: results
are identical from run to run, between cluster sizes and between the two paths.

The forward cache of the last theta stays on the workers, one per chunk (shared by both
paths, locked for each pass), so that ``jac`` or ``hessp`` after ``fun`` at the same theta
runs no second forward pass.  Dask is imported
at the first use, never by ``import nncore``.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import sys
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import CancelledError, Future
from typing import Any, NamedTuple

import numpy as np

from . import kernels
from ._validation import (
    FloatArray,
    check_theta,
    check_vector,
    check_weight_values,
)
from .kernels import Batch
from .objective import Objective, architecture_of, chunk_forward, chunk_grad, chunk_product
from .workspace import Workspace

DASK_MISSING = (
    'nncore.distributed needs Dask: pip install "dask[array]" distributed '
    '(or pip install ".[dask]" in a checkout of nncore)'
)
DEFAULT_TIMEOUT = 300.0
"""Seconds any single wait (connecting, sending theta, one evaluation, closing) may take
before nncore raises ``TimeoutError``; every :class:`DaskObjective` takes its own
``timeout``."""
PERSIST_FRACTION = 0.5
"""``persist="auto"`` keeps the data in worker memory when their estimated size (the
float64 rows, targets and weights, plus each chunk's workspace: the forward cache of every
row and the buffers of a pass) is at most this fraction of the workers' summed memory
limit; otherwise they stay where they are (on disk) and every evaluation reads them again."""
FAN_IN = 8
"""On the graph path, a task adds this many consecutive nodes of the tree (:func:`_add`):
three of its levels.  A power of two, so that each group is a whole subtree."""
MAX_GATHER_BYTES = 2**30
"""The least-squares methods need the residual Jacobian on the client; it is built only when
it takes at most this many bytes (1 GiB)."""
CLIENT_SUM_BYTES = 2**20
"""The last level of the tree is added on the client when its partial sums take at most this
many bytes together (1 MiB: 8 gradients of 16,000 parameters); larger ones are added on
the workers down to one, so that the client receives a single vector.  A level on the
workers costs a round trip through the scheduler (a few ms); 1 MiB more to the client costs
less than a millisecond at 10 Gbit/s."""
KEEP_STATES = 4
"""A worker keeps the forward caches of this many objectives at most (the most recent)."""
DIRECT_BYTES = 2**24
"""With ``direct=True``, an evaluation goes to the workers directly (one Dask actor each)
when the partial sums of all the chunks take at most this many bytes together (16 MiB: 8
gradients of 260,000 parameters), the most that can come to the client (when no worker
holds two chunks of one node of the tree; in runs, one vector per worker comes).  Larger
ones, and the full Hessian, go through the scheduler as a graph."""
UNREACHABLE = 2.0
"""Seconds a worker the client failed to connect to may stay listed by the scheduler before
the client takes it as out of its reach (rather than gone) and calls the actors through
the scheduler; a killed worker's nanny tells the scheduler at once."""
POLL = 0.1
"""Seconds between the checks, while the client waits for the workers' direct answers,
that the client is open and that every actor's worker is still there."""


def _dask() -> tuple[Any, Any]:
    try:
        import dask.array as da
        import distributed
    except ImportError as err:
        raise ImportError(DASK_MISSING) from err
    return da, distributed


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a ``dask.array.Array`` (without importing Dask)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


# -- data sources ------------------------------------------------------------------------
class MemmapFile:
    """A memory-mapped array as a file name, opened where it is read: a ``numpy.memmap``
    (``np.load(path, mmap_mode="r")``) would otherwise be pickled into the task graph with
    all its bytes.  The workers must see the same file (a shared file system)."""

    def __init__(self, mm: np.memmap) -> None:
        self.filename, self.offset = str(mm.filename), int(mm.offset)
        self.shape, self.dtype, self.ndim = mm.shape, mm.dtype, mm.ndim
        self.order = "F" if (mm.flags.f_contiguous and not mm.flags.c_contiguous) else "C"

    def __getitem__(self, index: Any) -> np.ndarray:
        mm = np.memmap(self.filename, self.dtype, "r", self.offset, self.shape, order=self.order)
        return np.array(mm[index])

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop``, read from the file into ``out`` (C-ordered files: one
        contiguous range of bytes) or, for F-ordered ones or without ``out``, a new array."""
        if out is None or self.order != "C":
            return self[start:stop]
        row = self.dtype.itemsize * math.prod(self.shape[1:])
        with open(self.filename, "rb", buffering=0) as f:
            f.seek(self.offset + start * row)
            _fill(f, out, self.filename)
        return out


class ZarrFile:
    """A zarr array as the rows of its chunks, read into a buffer the caller reuses.

    An uncompressed array in a local store whose chunks hold whole rows (the only codec
    ``bytes``, in the machine's byte order, zarr format 3; or no compressor and no
    filters, C order, format 2) stores each chunk as its elements in C order, padded to
    the full chunk shape: rows ``a:b`` of chunk ``c`` are a contiguous range of its file,
    read straight into the caller's buffer.  zarr itself reads the whole file into a new
    buffer first, 5-10x the time of the copy for large chunks on this machine (fresh
    pages); any other array is read through zarr, into a new array."""

    def __init__(self, z: Any) -> None:
        self.array = z
        self.shape, self.dtype, self.ndim = tuple(z.shape), np.dtype(z.dtype), z.ndim
        self.root = self.rows = None  # no direct reads
        meta, store = z.metadata, z.store
        if type(store).__name__ != "LocalStore" or tuple(z.chunks[1:]) != self.shape[1:]:
            return
        native = self.dtype.isnative
        if meta.zarr_format == 3:
            codecs = meta.codecs
            plain = (
                len(codecs) == 1
                and type(codecs[0]).__name__ == "BytesCodec"
                and (codecs[0].endian is None or codecs[0].endian.value == sys.byteorder)
            )
        else:
            plain = meta.compressor is None and not meta.filters and meta.order == "C"
        if plain and native:
            self.root, self.rows = str(store.root), int(z.chunks[0])

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.array[index])

    def _chunk_file(self, c: int) -> str:
        key = self.array.metadata.encode_chunk_key((c,) + (0,) * (self.ndim - 1))
        path = self.array.path
        return f"{self.root}/{path}/{key}" if path else f"{self.root}/{key}"

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop``: into ``out`` from the chunk files when the array allows it
        (a missing chunk file is the fill value, as zarr reads it), else a new array."""
        if out is None or self.root is None:
            return self[start:stop]
        rows, row = self.rows, self.dtype.itemsize * math.prod(self.shape[1:])
        for c in range(start // rows, (stop - 1) // rows + 1):
            a, b = max(start, c * rows), min(stop, (c + 1) * rows)
            part, name = out[a - start : b - start], self._chunk_file(c)
            try:
                f = open(name, "rb", buffering=0)
            except FileNotFoundError:
                part[...] = self.array.fill_value
                continue
            with f:
                f.seek((a - c * rows) * row)
                _fill(f, part, name)
        return out


def _fill(f: Any, out: np.ndarray, name: str) -> None:
    """Read ``out.nbytes`` bytes from the file ``f`` into the C-contiguous ``out``."""
    view, done = memoryview(out).cast("B"), 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise ValueError(
                f"{name} ended after {done} of the {len(view)} bytes expected: truncated?"
            )
        done += got


def _reader(value: Any) -> MemmapFile | ZarrFile | None:
    """What reads ``value``'s rows into a reused buffer on a worker: a memory-mapped file,
    a zarr array; ``None`` for anything else (read through its dask array)."""
    if isinstance(value, np.memmap) and value.filename is not None and value.base is not None:
        return MemmapFile(value)
    if type(value).__module__.startswith("zarr") and type(value).__name__ == "Array":
        return ZarrFile(value)
    return None


def _rows(da: Any, value: Any, name: str, rows: Any) -> Any:
    """``value`` as a dask array chunked by rows only: with row chunks ``rows``, or (``"auto"``)
    a dask array's own row chunks, and Dask's choice for anything else."""
    reader = _reader(value)
    if isinstance(reader, MemmapFile):  # the file's name travels, not its bytes
        value = reader
    if not isinstance(value, da.Array):
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            value = np.asarray(value)
        if len(value.shape) == 0:
            raise ValueError(f"{name} must have one row per sample, got a scalar")
        value = da.from_array(value, chunks=(rows,) + (-1,) * (len(value.shape) - 1))
    if any(math.isnan(c) for c in value.chunks[0]):
        raise ValueError(
            f"{name} has chunks of unknown size: call {name}.compute_chunk_sizes() first"
        )
    whole = {axis: -1 for axis in range(1, value.ndim)}  # whole rows
    return value.rechunk(whole if rows == "auto" else {0: rows, **whole})


def _persisted_nbytes(arch: Any, rows: list[int]) -> int:
    """Bytes the persisted chunks of ``rows`` rows each take on the workers: their float64
    rows, targets and weights, and each chunk's workspace (forward cache, deltas, R-pass
    buffers and one gradient of ``n_params`` floats, the part that does not grow with the
    rows)."""
    one, two = Workspace(arch, 1).max_nbytes, Workspace(arch, 2).max_nbytes
    per_row = 8 * (arch.sizes[0] + arch.sizes[-1] + 1) + two - one
    return sum(rows) * per_row + len(rows) * (2 * one - two)


class _Source(NamedTuple):
    """Data left where they are: each task computes its own chunk, one ``dask.delayed``
    per chunk and array (``to_delayed``; a dask array's ``blocks[i].compute()`` would copy
    the chunk once more, 30 ms for 250,000 x 64 floats).  When every array has a
    :func:`_reader` (memory-mapped files, zarr arrays), an evaluation's task reads its
    rows with it instead, into buffers it keeps for the next chunk of the same length."""

    X: list
    y: list
    w: list | None
    readers: tuple | None = None

    def chunk(self, index: int, start: int, stop: int, buffers: dict | None = None) -> tuple:
        """``(X, y, w)`` of chunk ``index`` (rows ``start:stop``), in ``buffers`` (arrays
        by name, made at the first use) when given and the arrays have readers."""
        if buffers is not None and self.readers is not None:
            got = []
            for name, reader in zip("Xyw", self.readers):
                shape = (stop - start,) + reader.shape[1:]
                out = buffers.get(name)
                if out is None or out.shape != shape or out.dtype != reader.dtype:
                    out = buffers[name] = np.empty(shape, reader.dtype)
                got.append(reader.read(start, stop, out))
            return got[0], got[1], (got[2] if len(got) > 2 else None)
        import dask

        parts = [self.X[index], self.y[index]] + ([] if self.w is None else [self.w[index]])
        got = dask.compute(*parts, scheduler="sync")
        return got[0], got[1], (None if self.w is None else got[2])


class _Box:
    """One object scattered as one piece (``distributed`` scatters the items of a tuple,
    a NamedTuple's too, as separate pieces)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Rows(NamedTuple):
    """A validated chunk: ``X``, ``Y`` as :func:`kernels.make_batch` returns them, and the
    weights ``w`` (``None`` without weights), not yet normalised."""

    X: FloatArray
    Y: FloatArray
    w: FloatArray | None


# -- tasks run by the workers --------------------------------------------------------
def _validated(X: Any, y: Any, w: Any, arch: Any, start: int, stop: int, index: int) -> _Rows:
    """The in-memory checks on one chunk; errors name the chunk and its rows."""
    try:
        n = np.shape(X)[0] if np.ndim(X) else 0
        if n != stop - start:
            raise ValueError(f"X's chunk holds {n} rows, but the dask array says {stop - start}")
        batch = kernels.make_batch(arch, X, y)
        weights = None if w is None else check_weight_values(w, n)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err} (chunk {index}: rows {start}:{stop}; indices within it)") from err
    return _Rows(batch.X, batch.Y, weights)


def _weight_stats(rows: _Rows) -> tuple[float, float]:
    """``(sum w, max w)`` of a chunk (its row count twice without weights)."""
    if rows.w is None:
        return float(rows.X.shape[0]), 1.0
    with np.errstate(over="ignore"):
        return float(rows.w.sum()), float(rows.w.max(initial=0.0))


def _scaled_sum(rows: _Rows, scale: float) -> float:
    return float((rows.w / scale).sum())


def _aligned(a: np.ndarray) -> np.ndarray:
    """``a``, or a copy in the same layout when its address is not a multiple of 8 bytes.

    Arrays unpickled from a task graph or from another worker can be unaligned; numpy then
    runs its ufuncs and reductions through buffers of 8192 elements, whose sums are grouped
    differently: the same rows would give other last bits on another worker."""
    return a if a.flags.aligned else a.copy(order="K")


def _weighted(rows: _Rows, total: float, scale: float) -> Batch:
    """The chunk as the chunked ``Objective`` holds it: explicit ``omega_i`` (``_split``)."""
    if rows.w is None:
        omega = np.full(rows.X.shape[0], 1.0 / total)
    else:
        omega = (rows.w if scale == 1.0 else rows.w / scale) / total
    return Batch(_aligned(rows.X), _aligned(rows.Y), omega)


class _State:
    """A worker's forward cache of one chunk: the theta it is for, its workspace, cache and
    share of the loss."""

    __slots__ = ("key", "ws", "cache", "value", "buffers", "lock")

    def __init__(self) -> None:
        self.key: FloatArray | None = None
        self.ws: Workspace | None = None
        self.cache: Any = None
        self.value = 0.0
        self.buffers: dict[str, np.ndarray] = {}  # a chunk's rows read from its source
        self.lock = threading.Lock()  # one pass at a time


_STATES: OrderedDict[str, dict[Any, _State]] = OrderedDict()
_STATES_LOCK = threading.Lock()


def _state(token: str, index: Any) -> _State:
    with _STATES_LOCK:
        states = _STATES.pop(token, None) or {}
        _STATES[token] = states  # the most recently used last
        while len(_STATES) > KEEP_STATES:
            _STATES.popitem(last=False)
        return states.setdefault(index, _State())


def _forget(token: str) -> None:
    with _STATES_LOCK:
        _STATES.pop(token, None)


def _load(
    data: Any,
    index: int,
    start: int,
    stop: int,
    arch: Any,
    norm: tuple,
    buffers: dict | None = None,
) -> Batch:
    """A chunk's :class:`Batch`: the persisted one, or read from the source again (into
    ``buffers`` when given: the batch then lives only until the next read)."""
    if isinstance(data, Batch):
        return data
    arch = arch.value if isinstance(arch, _Box) else arch
    rows = data.value.chunk(index, start, stop, buffers)
    return _weighted(_validated(*rows, arch, start, stop, index), *norm)


def _evaluate(data, index, start, stop, theta, v, what, arch, token, norm, sink=None):
    """One chunk's partial sums: a tuple of floats and arrays, l2 left out; or, with
    ``sink``, ``sink(partial sums)`` called before the chunk's state is let go (its
    gradient is then the workspace's buffer: no copy).

    The chunk's state is locked for the whole pass: an actor call the client gave up on
    (its worker lost another chunk) may still be running on this worker when the graph
    that replaces it computes the same chunk."""
    if isinstance(data, Batch):  # persisted: the chunk's forward cache is kept
        state = _state(token, index)
    else:  # read again: only the buffers are kept, one set per chunk length and thread
        state = _state(token, (start - stop, threading.get_ident()))
    with state.lock:
        part = _chunk_sums(state, data, index, start, stop, theta, v, what, arch, norm)
        if sink is not None:
            return sink(part)
        if what == "fun_and_jac":  # the workspace's gradient buffer, for the next pass
            part = (part[0], part[1].copy())
        return part


def _chunk_sums(state, data, index, start, stop, theta, v, what, arch, norm) -> tuple:
    if not isinstance(data, Batch):
        state.key = None
    batch = _load(data, index, start, stop, arch, norm, state.buffers)
    if not all(a.flags.aligned for a in batch):  # moved here from another worker
        batch = Batch(*map(_aligned, batch))
    arch = arch.value
    if state.ws is None:
        state.ws = Workspace(arch, batch.X.shape[0])
    ws, params = state.ws, arch.layout.unpack(theta)
    # theta is scattered once per point: every task at that point gets the very same
    # array, never modified, from the worker's memory (a copy and a comparison of
    # n_params floats would allocate on every call, on workers whose allocator hands
    # memory back to the system eagerly); a new object at an old point only recomputes
    if state.key is not theta:
        state.key = None  # no valid cache until the pass is complete
        state.cache, state.value = chunk_forward(arch, params, batch, ws)
        state.key = theta
    if what == "fun":
        return (state.value,)
    if what == "fun_and_jac":
        return state.value, chunk_grad(arch, params, state.cache, batch, ws)
    if what in ("exact", "gauss_newton"):
        return (chunk_product(what, arch, params, state.cache, batch, v, ws),)
    kind = what.removeprefix("hess_")  # the full matrix, column by column
    H = np.empty((arch.n_params, arch.n_params))
    e = np.zeros(arch.n_params)
    for j in range(arch.n_params):
        e[j] = 1.0
        H[:, j] = chunk_product(kind, arch, params, state.cache, batch, e, ws)
        e[j] = 0.0
    return (H,)


def _pair(left: list, owned: bool, right: tuple) -> list[np.ndarray]:
    """``left + right``, component by component: into ``left`` when it is ``owned`` (arrays
    of an earlier sum), else into new arrays (0-d for a scalar).  Elementwise float64
    additions: the same bits wherever they run."""
    out = left if owned else [np.empty(np.shape(a)) for a in left]
    for o, a, b in zip(out, left, right):
        np.add(a, b, out=o)
    return out


def _add(*parts: tuple) -> list[np.ndarray]:
    """The sum of partial-sum tuples, in the tree that fixes every result's bits: neighbours
    added in pairs, level by level, an odd last one carried up (so the nodes of level ``l``
    are the sums of the aligned blocks of ``2**l`` consecutive parts; :func:`_root` from
    the parts themselves).  New arrays."""
    return _root({(0, i): part for i, part in enumerate(parts)}, len(parts))


def _cover(indices: list[int], n: int) -> list[tuple[int, int]]:
    """The largest nodes ``(level, k)`` of :func:`_add`'s tree over ``n`` parts whose parts
    (``k * 2**level`` up to ``(k + 1) * 2**level``, at most ``n``) are all in ``indices``
    (sorted): what a worker holding those chunks can add by itself, in chunk order."""
    held, nodes = set(indices), []
    for i in indices:
        if nodes and i < (nodes[-1][1] + 1) << nodes[-1][0]:
            continue  # inside the last node
        level = 0
        while (i >> level) & 1 == 0 and (1 << level) < n:  # a left child: try its parent
            start = i >> (level + 1) << (level + 1)
            stop = min(start + (2 << level), n)
            if not all(j in held for j in range(start, stop)):
                break
            level += 1
        nodes.append((level, i >> level))
    return nodes


def _reduce_rows(columns: list[np.ndarray], rows: list[tuple[int, int]]) -> None:
    """Add, in place, each block ``rows[j] = (start, size)`` of consecutive rows (parts
    ``start...`` of one node of :func:`_cover`) into its first row, in :func:`_add`'s
    order: the same pairs, level by level."""
    for start, size in rows:
        step = 1
        while step < size:
            for column in columns:
                column[start : start + size - step : 2 * step] += column[
                    start + step : start + size : 2 * step
                ]
            step *= 2


def _root(nodes: dict, n: int) -> list[np.ndarray]:
    """:func:`_add` of ``n`` parts from nodes of its tree (``{(level, k): partial sums}``
    covering every part, as the workers' :func:`_cover` gives them): the same bits."""

    def value(level: int, k: int) -> tuple[tuple, bool]:
        got = nodes.get((level, k))
        if got is not None:
            return got, False
        if level == 0:
            raise KeyError(f"no partial sums for chunk {k}")
        left = value(level - 1, 2 * k)
        if (2 * k + 1) << (level - 1) >= n:  # no right child: carried up
            return left
        return _pair(*left, value(level - 1, 2 * k + 1)[0]), True

    total, owned = value(max(n - 1, 0).bit_length(), 0)
    return total if owned else [np.array(a, dtype=np.float64) for a in total]  # copies


class _Host:
    """A Dask actor, one per worker: it holds the chunks that live on its worker and
    evaluates them when the client calls it, directly, without the scheduler (the dask-glm
    pattern without a graph per evaluation).  Each call runs :func:`_evaluate` on every one
    of its chunks (in a pool of the worker's threads), adds those of every node of the tree
    whose chunks it holds all (:func:`_cover`, in :func:`_add`'s order), and returns the
    nodes' partial sums; the forward caches are the graph tasks' own (``_STATES``).  Theta
    comes with the first call at a point (``point``: an id unique in the client's process)
    and is kept for the next calls at that point; a call without it at another point
    answers ``None``, and the client sends theta."""

    def __init__(self, token: str, arch: Any, norm: tuple, chunks: list, n: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import distributed

        self.chunks = sorted(chunks, key=lambda c: c[0])
        self.n_params = arch.value.n_params
        self.point, self.theta = None, None
        self.shared = (arch, token, norm)
        self.nodes = _cover([c[0] for c in self.chunks], n)
        rows = np.cumsum([0] + [min(k + 1 << level, n) - (k << level) for level, k in self.nodes])
        self.blocks = [(int(a), int(b - a)) for a, b in zip(rows[:-1], rows[1:]) if b - a > 1]
        self.first = rows[:-1]  # each node's first row: its sum, once added
        self.out: dict[str, list[list[np.ndarray]]] = {}
        threads = min(distributed.get_worker().state.nthreads, len(chunks))
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def evaluate(self, point: int, theta: Any, v: Any, what: str) -> tuple | None:
        """``(nodes, [one array per component of the partial sums, a row per node])``, or
        ``None`` when theta is needed."""
        if theta is not None:
            self.point, self.theta = point, _aligned(theta)
        elif point != self.point:
            return None
        theta, v = self.theta, (None if v is None else _aligned(v))
        # one array per component (the losses, the gradients...), a row per chunk, and the
        # nodes' rows taken from them, kept for the next call (the answer has left before
        # the client calls again): no allocation per call, one message's worth of framing
        n, m = self.n_params, len(self.chunks)
        shapes = {"fun": [()], "fun_and_jac": [(), (n,)]}.get(what, [(n,)])
        if what not in self.out:  # the nodes' rows only when some node has two chunks
            rows = (m, len(self.nodes)) if self.blocks else (m,)
            self.out[what] = [[np.empty((r, *shape)) for shape in shapes] for r in rows]
        columns, *answer = self.out[what]

        def one(k: int) -> None:
            def sink(part: tuple) -> None:
                for column, value in zip(columns, part):
                    column[k] = value

            index, data, start, stop = self.chunks[k]
            _evaluate(data, index, start, stop, theta, v, what, *self.shared, sink=sink)

        if self.pool is None:
            for k in range(m):
                one(k)
        else:
            list(self.pool.map(one, range(m)))
        if not self.blocks:  # no two chunks of one node here: every chunk is a node
            return self.nodes, columns
        _reduce_rows(columns, self.blocks)
        for column, out in zip(columns, answer[0]):
            np.take(column, self.first, axis=0, out=out)
        return self.nodes, answer[0]


def _levels(parts: list, size: int) -> int:
    """How many levels of the tree (groups of :data:`FAN_IN` consecutive partial sums) are
    added before the last one, for ``len(parts)`` partial sums of ``size`` bytes each."""
    n, depth = len(parts), 0
    while n > 1 and n * size > CLIENT_SUM_BYTES or n > FAN_IN:
        n, depth = -(-n // FAN_IN), depth + 1
    return depth


def _runs(workers: list, n: int) -> list:
    """The worker of each of ``n`` chunks: consecutive runs of even length, one per worker
    (in the order given), so that each worker holds whole nodes of :func:`_add`'s tree."""
    return [workers[i * len(workers) // n] for i in range(n)]


_POINTS = itertools.count()
"""Ids of the points sent to the actors, unique in the client's process (objectives made by
``fresh`` share their actors)."""


# -- the client side ---------------------------------------------------------------------
def _actor_call(client: Any, address: str, key: str, method: str, *args: Any) -> Future:
    """``method(*args)`` on the Dask actor ``key`` living on the worker at ``address``, sent
    straight to that worker on the client's own connection to it (Dask's ``actor_execute``
    handler), where Dask's actor handle would go through the scheduler unless the client
    has ``direct_to_workers=True``; a ``concurrent.futures.Future`` of the answer (or of the
    method's error)."""
    import asyncio

    from distributed.protocol import to_serialize

    async def call() -> Any:
        answer = await client.rpc(address).actor_execute(
            function=method, actor=key, args=[to_serialize(a) for a in args], kwargs={}
        )
        if answer["status"] != "OK":
            raise answer["exception"]
        return answer["result"]

    return asyncio.run_coroutine_threadsafe(call(), client.loop.asyncio_loop)


def _client(client: Any, timeout: float) -> Any:
    _, distributed = _dask()
    if isinstance(client, str):
        try:
            return distributed.Client(client, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise TimeoutError(
                f"could not reach the Dask scheduler at {client!r} within {timeout} s: {err}"
            ) from err
    if client is None:
        try:
            return distributed.get_client()
        except ValueError as err:
            raise ValueError(
                "no Dask client: pass client= (a distributed.Client or a scheduler address) "
                "or start one first, e.g. distributed.Client(distributed.LocalCluster())"
            ) from err
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client or an address, got {client!r}")
    return client


class DaskObjective(Objective):
    """``J(theta)``, its gradient and curvature products over data on a Dask cluster.

    The same public interface and results as :class:`~nncore.objective.Objective` (equal to
    round-off; see the module notes for what moves where): every pass over the data is its
    own, and it inherits what only combines them (``fun_and_jac``, ``hessp``, ``gnvp``, the
    l2 term and the overflow check).  It holds no ``batch``: the rows stay on the cluster.

    Parameters
    ----------
    net : MLP
    X, y, sample_weight
        Dask arrays chunked by rows (column chunks are merged into whole rows; ``y`` and the
        weights take the row chunks of ``X``), or anything ``dask.array.from_array`` wraps:
        numpy arrays, a memory-mapped ``.npy`` (``np.load(path, mmap_mode="r")``, read by
        the workers from the file), a zarr or HDF5 array.  Data left on disk
        (``persist=False``) are read again at every evaluation: when every array is a
        memory-mapped ``.npy`` or a zarr array (not a dask array made from one), each task
        reads its rows straight into buffers it keeps (see :class:`ZarrFile`, which says
        which zarr arrays allow it), else through the dask array's own chunk tasks.
    client : distributed.Client or str, optional
        The client, or a scheduler address to connect to; by default the current client.
    chunk_size : int, optional
        Rows per chunk for inputs that are not dask arrays (default: Dask's ``"auto"``).
    persist : {"auto", True, False}, default "auto"
        Keep the validated chunks (and their forward caches) in worker memory, or read
        them from their source at every evaluation; ``"auto"`` persists when they fit in
        :data:`PERSIST_FRACTION` of the workers' memory.
    timeout : float, default :data:`DEFAULT_TIMEOUT`
        Seconds any single wait (sending theta, an evaluation, :meth:`close`) may take
        before ``TimeoutError`` (``close`` then returns).
    direct : bool, default True
        Evaluate through one Dask actor per worker, called by the client straight on its
        worker (through the scheduler when the client was made with
        ``direct_to_workers=False``), when the partial sums of all chunks take at most
        :data:`DIRECT_BYTES`; ``False``: every evaluation is a graph through the
        scheduler.  Both give the same bits.

    Attributes
    ----------
    nfev, njev, nhev : int
        As for ``Objective``: points whose loss was computed, gradients, curvature products.
    persisted : bool
        Whether the data live in worker memory.
    direct : bool
        Whether evaluations go to the workers' actors when they can (the argument).
    row_ranges : list of (int, int)
        The rows of each chunk.
    """

    def __init__(
        self,
        net: Any,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        client: Any = None,
        *,
        chunk_size: int | None = None,
        persist: bool | str = "auto",
        timeout: float = DEFAULT_TIMEOUT,
        direct: bool = True,
    ) -> None:
        da, distributed = _dask()
        self.net = net
        self.arch = arch = architecture_of(net)
        for name, value, kind in (
            ("timeout", timeout, numbers.Real),
            ("chunk_size", 1 if chunk_size is None else chunk_size, numbers.Integral),
        ):
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if persist not in ("auto", True, False):
            raise ValueError(f"persist must be 'auto', True or False, got {persist!r}")
        if not isinstance(direct, bool):
            raise TypeError(f"direct must be True or False, got {direct!r}")
        self.timeout, self.direct = float(timeout), direct
        self._hosts: list | None = None  # the actors, made at the first direct evaluation
        self._host_futures: list | None = None
        self._host_addresses: list[str] = []
        self._via_scheduler = ""  # a worker the client could not reach: calls through
        # the scheduler while the scheduler lists it (see _call)
        self.client = client = _client(client, self.timeout)
        Xd = _rows(da, X, "X", chunk_size or "auto")
        if Xd.ndim != 2:
            raise ValueError(
                f"X must be 2-D with shape (n_samples, {arch.sizes[0]}), got shape {Xd.shape}"
            )
        N = Xd.shape[0]
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            n = np.shape(value)[0] if value is not None and np.ndim(value) else None
            if value is not None and n != N:
                raise ValueError(f"X has {N} rows but {name} has {n}: they must agree")
        rows = Xd.chunks[0]
        yd = _rows(da, y, "y", rows)
        wd = None if sample_weight is None else _rows(da, sample_weight, "sample_weight", rows)
        self.n_samples = N
        ends = np.cumsum((0,) + rows)
        self.row_ranges = [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]
        self._token = uuid.uuid4().hex
        self._arch_f = self._scatter(_Box(arch))
        self.persisted = self._fits(persist)

        # validate every chunk on the workers, and add the weight totals in chunk order
        xs, ys = Xd.to_delayed().ravel(), yd.to_delayed().ravel()
        ws = [None] * len(xs) if wd is None else wd.to_delayed().ravel()
        import dask

        checked = [
            dask.delayed(_validated, pure=False)(x, y_, w, arch, a, b, i)
            for i, (x, y_, w, (a, b)) in enumerate(zip(xs, ys, ws, self.row_ranges))
        ]
        if self.persisted:  # the validated chunks stay on the workers
            raw = client.compute(checked)
            stats = self._gather(client.map(_weight_stats, raw, pure=False))
        else:  # only their totals: the workers hold a chunk or two at a time, whatever N
            raw = checked
            stats = self._gather(client.compute([dask.delayed(_weight_stats)(c) for c in raw]))
        sums = [s for s, _ in stats]
        total, scale = _ordered_sum(sums), 1.0
        if wd is not None and not total > 0:
            raise ValueError("sample_weight must not be all zero")
        if not math.isfinite(total):  # finite weights whose sum overflows (as in memory)
            scale = max(m for _, m in stats)
            if self.persisted:
                scaled = client.map(_scaled_sum, raw, scale=scale)
            else:  # read and validated again
                scaled = client.compute([dask.delayed(_scaled_sum)(c, scale) for c in raw])
            total = _ordered_sum(self._gather(scaled))
        self._norm = (total, scale)
        if self.persisted:
            # in runs of consecutive chunks, one run per worker, so that each actor adds
            # its chunks' sums into a few nodes of the tree (Dask places the chunks as
            # they come: a run would be cut up); "loose": anywhere, if a worker is gone
            where = _runs(sorted(self._workers()), len(raw))
            self._data = [
                client.submit(
                    _weighted,
                    c,
                    total=total,
                    scale=scale,
                    pure=False,
                    workers=w,
                    allow_other_workers=w is not None,
                )
                for c, w in itertools.zip_longest(raw, where)
            ]
            self._wait(self._data)
        else:
            readers = tuple(map(_reader, (X, y) if wd is None else (X, y, sample_weight)))
            self._source = _Box(
                _Source(
                    list(xs),
                    list(ys),
                    None if wd is None else list(ws),
                    None if None in readers else readers,
                )
            )
            self._data = self._scatter(self._source)
        del raw, checked
        self._reset()

    @classmethod
    def from_batch(cls, *args: Any, **kwargs: Any) -> DaskObjective:
        """Not for a DaskObjective, whose rows never come to the client as a ``Batch``.

        Parameters
        ----------
        *args, **kwargs
            Ignored: the call always raises.

        Raises
        ------
        TypeError
            Always; construct ``DaskObjective(net, X, y, sample_weight, client)`` instead,
            or use :meth:`Objective.from_batch <nncore.objective.Objective.from_batch>` for
            a ``Batch`` in memory.
        """
        raise TypeError("a DaskObjective takes X, y and weights; for a Batch use Objective")

    def _reset(self) -> None:
        self.nfev = self.njev = self.nhev = 0
        self._overflow_ok = False
        self._key = np.empty(self.arch.n_params)
        self._theta: FloatArray | None = None
        self._params: Any = None
        self._J: float | None = None
        self._g: FloatArray | None = None
        self._H: dict[str, FloatArray] = {}
        self._theta_f: Any = None  # theta's future on the workers
        self._retired: list = []  # the last evaluation's futures, released by the next
        self._point: int | None = None  # the id of this point for the actors
        self._sent: set[int] = set()  # the actors that hold theta at this point
        self._local: Objective | None = None

    # Objective's pickling drops and rebuilds its in-memory buffers; a DaskObjective has none
    # (its data and caches live on the workers), so copy.copy (fresh) keeps its state as is
    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def fresh(self) -> DaskObjective:
        """An objective on the same persisted data with zero counts and no cached point.

        Returns
        -------
        DaskObjective
            A shallow copy on the same client and the same data on the workers (nothing
            is sent again), with ``nfev = njev = nhev = 0``.
        """
        other = copy.copy(self)
        other._reset()
        return other

    def _workers(self) -> dict:
        """The scheduler's record of every worker, by address."""
        try:
            return self.client.scheduler_info(n_workers=-1)["workers"]  # all, not the first 5
        except TypeError:  # distributed before 2025.1 lists them all anyway
            return self.client.scheduler_info()["workers"]

    def _fits(self, persist: bool | str) -> bool:
        if persist != "auto":
            return bool(persist)
        need = _persisted_nbytes(self.arch, [b - a for a, b in self.row_ranges])
        workers = self._workers().values()
        limit = sum(w.get("memory_limit") or 0 for w in workers)
        return limit == 0 or need <= PERSIST_FRACTION * limit

    # -- moving theta and partial sums ---------------------------------------------------
    def _live(self) -> Any:
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise RuntimeError(
                f"the Dask client of this objective is {self.client.status}: nothing can be "
                "evaluated on the cluster any more"
            )
        return self.client

    def _bounded(self, call: Any, failed: str) -> Any:
        """``call()``, a client method called with ``asynchronous=True``, run on the
        client's event loop for at most ``timeout`` seconds (Dask's own timeouts bound
        neither a request in flight nor the connection to a scheduler that went away);
        ``failed`` says what did not happen in time."""
        _, distributed = _dask()
        try:
            return self.client.sync(call, callback_timeout=self.timeout)
        except (TimeoutError, distributed.TimeoutError) as err:
            raise TimeoutError(
                f"{failed} within timeout={self.timeout} s (is the cluster alive, can the "
                f"scheduler be reached, has it workers?): {err}"
            ) from err
        except CancelledError as err:
            raise self._cancelled(err) from err
        except OSError as err:  # a connection failed or closed: the cluster went away
            self._live()  # a closed client says so
            raise RuntimeError(f"the Dask cluster could not be reached: {err}") from err

    def _scatter(self, value: Any) -> Any:
        """``value`` copied to every worker once (one request); its future, or a list of
        futures for a list."""
        client = self.client
        return self._bounded(
            lambda: client.scatter(
                value, broadcast=True, hash=False, timeout=self.timeout, asynchronous=True
            ),
            "could not send data to the Dask workers",
        )

    def _wait(self, futures: list) -> None:
        """Wait for ``futures`` to finish (in error or not), at most ``timeout``."""
        _, distributed = _dask()
        try:
            distributed.wait(futures, timeout=self.timeout)
        except (TimeoutError, distributed.TimeoutError) as err:
            raise TimeoutError(
                f"a Dask computation did not finish within timeout={self.timeout} s (is "
                f"the cluster alive and has it workers?): {err}"
            ) from err
        except CancelledError as err:
            raise self._cancelled(err) from err

    def _cancelled(self, err: BaseException) -> RuntimeError:
        self._live()  # a closed client says so
        return RuntimeError(f"a Dask computation was cancelled: {err!r}")

    def _gather(self, futures: list) -> list:
        """The results of ``futures``, waiting at most ``timeout`` in all (one request);
        a task's error is raised as it is."""
        client = self.client
        return self._bounded(
            lambda: client.gather(futures, asynchronous=True),
            "a Dask computation did not finish",
        )

    def _send(self, v: FloatArray | None) -> tuple[Any, Any]:
        """The futures of theta (scattered once per point: products at one point share
        it) and of ``v``, scattered together when both are new."""
        new = [self._key.copy()] if self._theta_f is None else []
        new += [] if v is None else [v]
        sent = self._scatter(new) if new else []
        if self._theta_f is None:
            self._theta_f = sent.pop(0)
        return self._theta_f, (None if v is None else sent[0])

    def _submit(self, what: str, theta_f: Any, v_f: Any, task: Any = None) -> list:
        """The chunks' tasks and the tree's levels on the workers, as one graph (one
        message to the scheduler); the futures of the level left for the client.  ``task``
        replaces :func:`_evaluate` (the benchmark's no-op, to measure Dask's own cost)."""
        import dask

        name = f"nncore-{what}-{uuid.uuid4().hex}"
        n = len(self.row_ranges)
        data = self._data if self.persisted else [self._data] * n
        evaluate, add = dask.delayed(task or _evaluate), dask.delayed(_add)
        shared = (theta_f, v_f, what, self._arch_f, self._token, self._norm)
        level = [
            evaluate(data[i], i, a, b, *shared, dask_key_name=(name, i))
            for i, (a, b) in enumerate(self.row_ranges)
        ]
        # the tree's levels on the workers, and its root on the client when what remains
        # is small (a level of tasks costs a scheduling round trip)
        for depth in range(1, _levels(level, self._size(what)) + 1):
            level = [
                add(*level[i : i + FAN_IN], dask_key_name=(f"{name}-sum{depth}", i // FAN_IN))
                for i in range(0, len(level), FAN_IN)
            ]
        return self.client.compute(level, optimize_graph=False)

    def _size(self, what: str) -> int:
        """Bytes of one chunk's partial sums for ``what``."""
        size = 8 * (self.arch.n_params if what != "fun" else 1)
        return size * self.arch.n_params if what.startswith("hess_") else size

    def _run(
        self, what: str, v: FloatArray | None = None, retries: int = 1, task: Any = None
    ) -> list:
        """The partial sums of every chunk for ``what``, added in a fixed tree: from the
        workers directly when :meth:`_run_direct` can, else through a graph."""
        self._live()
        if task is None and self._direct(what):
            got = self._run_direct(what, v)
            if got is not None:
                return got
            self._live()  # the actors went with a closed client: say so, not try a graph
        try:
            theta_f, v_f = self._send(v)
            level = self._submit(what, theta_f, v_f, task)
            # the futures of the last evaluation are released only now: their message to
            # the scheduler goes after this graph's, not before it (the client sends its
            # messages at most every 10 ms)
            self._retired = [v_f, *level]
            return _add(*self._gather(level))
        except RuntimeError as err:
            # scattered data lost with every worker that held them: scatter them again, once
            if retries and isinstance(err.__cause__, CancelledError):
                self._theta_f = None
                self._arch_f = self._scatter(_Box(self.arch))
                if not self.persisted:
                    self._data = self._scatter(self._source)
                return self._run(what, v, retries - 1, task)
            raise

    # -- straight to the workers: one actor each ------------------------------------
    def _direct(self, what: str) -> bool:
        if not self.direct or what.startswith("hess_"):
            return False
        return len(self.row_ranges) * self._size(what) <= DIRECT_BYTES

    def _make_hosts(self) -> list | None:
        """One :class:`_Host` per worker, with the chunks it holds (persisted) or an even
        share of consecutive chunks (read from their source); ``None`` when Dask could not
        make them (the graph path then serves, and they are tried again next time)."""
        client, n = self.client, len(self.row_ranges)
        try:
            if self.persisted:
                keys = [f.key for f in self._data]
                holders = self._bounded(
                    lambda: client.scheduler.who_has(keys=keys),
                    "the Dask scheduler did not say where the chunks are",
                )
                owner = [min(holders.get(f.key) or [None], key=str) for f in self._data]
                if None in owner:  # a chunk is being recomputed: not now
                    return None
                data = self._data
            else:
                workers = sorted(self._workers())
                if not workers:  # the graph path says so, within the timeout
                    return None
                owner = _runs(workers, n)
                data = [self._data] * n
            groups: dict[str, list] = {}
            for i, ((a, b), w) in enumerate(zip(self.row_ranges, owner)):
                groups.setdefault(w, []).append((i, data[i], a, b))
            made = [
                client.submit(
                    _Host,
                    self._token,
                    self._arch_f,
                    self._norm,
                    chunks,
                    n,
                    actor=True,
                    workers=[w],
                    allow_other_workers=False,
                    pure=False,
                )
                for w, chunks in groups.items()
            ]
            self._gather(made)
            self._hosts = [f.result() for f in made]
            self._host_futures, self._host_addresses = made, list(groups)
        except (OSError, RuntimeError, TimeoutError, CancelledError):
            self._hosts = self._host_futures = None
        self._sent = set()
        return self._hosts

    def _run_direct(self, what: str, v: FloatArray | None) -> list | None:
        """The partial sums from every actor, added in the tree's order on the client;
        ``None`` when an actor's worker is gone (the actors are dropped, the graph path
        recomputes what was lost, and new actors are made at the next evaluation)."""
        if self._via_scheduler and self._via_scheduler not in self._workers():
            self._via_scheduler = ""  # it had gone: the others can be reached
        hosts = self._hosts or self._make_hosts()
        if hosts is None:
            return None
        if self._point is None:
            self._point = next(_POINTS)
        got = self._ask(hosts, what, v, resend=False)
        if got is not None and any(r is None for r in got):  # a host moved to another point
            got = self._ask(hosts, what, v, resend=True)
        if got is None:
            self._hosts = self._host_futures = None
            return None
        self._sent = set(range(len(hosts)))
        nodes = {}
        for held, columns in got:
            for row, node in enumerate(held):
                nodes[node] = tuple(column[row] for column in columns)
        return _root(nodes, len(self.row_ranges))

    def _ask(self, hosts: list, what: str, v: Any, resend: bool) -> list | None:
        """Call every actor (theta to those that do not hold this point, or to all with
        ``resend``) and wait for the answers; ``None`` when an actor's worker is gone."""
        theta = self._key.copy()  # the message may leave after this returns
        try:
            if any(f.status != "finished" for f in self._host_futures):
                return None  # a worker holding an actor was lost
            sent = [theta if resend or k not in self._sent else None for k in range(len(hosts))]
            calls = [self._call(k, self._point, t, v, what) for k, t in enumerate(sent)]
        except OSError:
            return None
        except RuntimeError as err:
            if "Actor" in str(err):  # "Worker holding Actor was lost"
                return None
            raise
        return self._wait_direct(calls)

    def _call(self, k: int, *args: Any) -> Any:
        """``evaluate(*args)`` on the ``k``-th actor; a future of its answer.

        A client's call on a Dask actor goes through the scheduler (which forwards the
        message both ways) unless the client was made with ``direct_to_workers=True``;
        here it goes to the actor's worker directly, as that option would send it, unless
        the client was made with ``direct_to_workers=False`` (its workers cannot be
        reached from the client), or while a worker the client failed to reach is still
        listed by the scheduler (it had not gone: it cannot be reached)."""
        if self.client.direct_to_workers is False or self._via_scheduler:
            return self._hosts[k].evaluate(*args)
        address, key = self._host_addresses[k], self._host_futures[k].key
        return _actor_call(self.client, address, key, "evaluate", *args)

    def _gone(self, address: str, deadline: float) -> None:
        """After a connection to the worker at ``address`` failed: wait until the scheduler
        has seen it go (the graph path that follows then recomputes its chunks elsewhere,
        rather than fail on it), at most :data:`UNREACHABLE` seconds; a worker still
        there then cannot be reached from the client, and the actors are called through
        the scheduler while it lists that worker."""
        end = min(deadline, time.monotonic() + UNREACHABLE)
        while time.monotonic() < end:
            self._live()
            if any(f.status != "finished" for f in self._host_futures):
                return
            if address not in self._workers():
                return
            time.sleep(POLL)
        self._via_scheduler = address

    def _wait_direct(self, calls: list) -> list | None:
        """The actors' answers, waiting at most ``timeout`` in all and checking every
        :data:`POLL` seconds that the client is open and every actor's worker is there;
        ``None`` when one is gone.  An error of a chunk's own computation is raised."""
        deadline = time.monotonic() + self.timeout
        answers = []
        for k, call in enumerate(calls):
            while True:
                self._live()
                if any(f.status != "finished" for f in self._host_futures):
                    return None  # a worker holding an actor was lost
                try:
                    answers.append(call.result(timeout=POLL))
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the Dask workers did not answer within timeout={self.timeout} s "
                            "(is the cluster alive?)"
                        ) from None
                except OSError:  # the worker went away, or cannot be reached
                    if isinstance(call, Future):
                        self._gone(self._host_addresses[k], deadline)
                    return None
                except RuntimeError as err:
                    if "Actor" in str(err):  # "Worker holding Actor was lost"
                        return None
                    raise
        return answers

    # -- the point -------------------------------------------------------------------
    def _at(self, theta: Any) -> None:
        if self._same(theta):
            return
        theta = check_theta(theta, self.arch.n_params)
        self._theta = None
        np.copyto(self._key, theta)
        self._params = self.arch.layout.unpack(self._key)
        self._J, self._g, self._H = None, None, {}
        if self._theta_f is not None:  # released with the next evaluation's futures
            self._retired.append(self._theta_f)
            self._theta_f = None
        self._point, self._sent = None, set()  # the actors get theta with the next call
        self._theta = self._key

    # -- the public interface of Objective ---------------------------------------------
    def fun(self, theta: Any) -> float:
        """``J(theta)``.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        float
            ``J = sum_i w_i l_i / sum_i w_i + 0.5 * l2 * sum_l ||W_l||_F^2`` over every row
            on the cluster, as :meth:`Objective.fun <nncore.objective.Objective.fun>`.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes of :mod:`nncore.objective`).
        TimeoutError
            When a wait on the cluster takes longer than ``timeout``.
        RuntimeError
            When the client is closed, the cluster cannot be reached or a Dask
            computation was cancelled.
        """
        self._at(theta)
        if self._J is None:
            (data,) = self._run("fun")
            self._J = float(data) + kernels.l2_value(self.arch, self._params)
            self.nfev += 1
        return self._finite(self._J, "the loss")

    def jac(self, theta: Any) -> FloatArray:
        """``dJ/dtheta``, a new array the caller owns.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        ndarray of shape (n_params,)
            The gradient, in the layout of theta.

        Raises
        ------
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data (see the module notes of :mod:`nncore.objective`).
        TimeoutError
            When a wait on the cluster takes longer than ``timeout``.
        RuntimeError
            When the client is closed, the cluster cannot be reached or a Dask
            computation was cancelled.
        """
        self._at(theta)
        if self._g is None:
            data, g = self._run("fun_and_jac")
            if self._J is None:
                self.nfev += 1
            self._J = float(data) + kernels.l2_value(self.arch, self._params)
            self._g = self._with_l2(g, self._key)
            self.njev += 1
        return self._finite(self._g, "the gradient").copy()

    def _product(self, kind: str, theta: Any, v: Any) -> FloatArray:
        self._at(theta)
        v = check_vector(v, self.arch.n_params)
        self.nhev += 1
        (total,) = self._run(kind, np.array(v))  # a copy the workers own
        result = self._with_l2(total, v)
        return self._finite(result, f"the {kind.replace('_', '-')} curvature product")

    def hess(self, theta: Any, kind: str = "exact") -> FloatArray:
        """The full Hessian or Gauss-Newton matrix (small networks), built once per theta and kind.

        Each chunk builds its share column by column, and the ``(n_params, n_params)``
        shares are added.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.
        kind : {"exact", "gauss_newton"}, default "exact"
            The exact Hessian, or the Gauss-Newton (Fisher) matrix.

        Returns
        -------
        ndarray of shape (n_params, n_params)
            The symmetric matrix, a new array the caller owns.

        Raises
        ------
        ValueError
            For any other ``kind``, or when a curvature product overflowed float64.
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN.
        TimeoutError
            When a wait on the cluster takes longer than ``timeout``.
        RuntimeError
            When the client is closed, the cluster cannot be reached or a Dask
            computation was cancelled.
        """
        if kind not in ("exact", "gauss_newton"):
            raise ValueError(f"kind must be 'exact' or 'gauss_newton', got {kind!r}")
        self._at(theta)
        if kind not in self._H:
            (H,) = self._run(f"hess_{kind}")
            self.nhev += self.arch.n_params
            if self.arch.l2:
                H[np.diag_indices_from(H)] += self.arch.l2 * self.arch.layout.weight_mask()
            self._H[kind] = 0.5 * (H + H.T)
        return self._finite(self._H[kind], "the Hessian").copy()

    # -- least squares: every row on the client ------------------------------------------
    def _in_memory(self) -> Objective:
        """An in-memory ``Objective`` on the gathered rows (least squares needs the whole
        residual Jacobian on the client anyway); ValueError when it would exceed
        :data:`MAX_GATHER_BYTES`."""
        if self._local is None:
            arch = self.arch
            size = 8 * self.n_samples * arch.sizes[-1] * arch.n_params
            if size > MAX_GATHER_BYTES:
                raise ValueError(
                    f"the residual Jacobian of {self.n_samples} rows takes {size / 2**30:.1f} "
                    f"GiB, more than MAX_GATHER_BYTES = {MAX_GATHER_BYTES / 2**30:.0f} GiB: use "
                    "a minimize method instead (Newton-CG or trust-krylov with curvature="
                    "'gauss_newton' is the same Gauss-Newton model, without the residuals)"
                )
            n = len(self.row_ranges)
            data = self._data if self.persisted else [self._data] * n
            starts, stops = zip(*self.row_ranges)
            parts = self._gather(
                self.client.map(
                    _load,
                    data,
                    range(n),
                    starts,
                    stops,
                    arch=self._arch_f,
                    norm=self._norm,
                    pure=False,
                )
            )
            batch = Batch(
                np.concatenate([p.X for p in parts]),
                np.asfortranarray(np.concatenate([p.Y for p in parts])),
                np.concatenate([p.omega for p in parts]),
            )
            self._local = Objective.from_batch(self.net, batch)
        return self._local

    def residuals(self, theta: Any) -> FloatArray:
        """mse residuals (every row, on the client; see :meth:`_in_memory`).

        The rows are gathered to the client once, into an in-memory
        :class:`~nncore.objective.Objective`, and the residuals are that objective's.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        r : ndarray of shape (n_samples * n_out [+ n_weights],)
            The residuals of every row, then, when ``l2 > 0``, those of the weights, with
            ``sum(r**2) == J`` (see :meth:`MLP.residuals <nncore.MLP.residuals>`).

        Raises
        ------
        ValueError
            When the loss is not mse, or the residual Jacobian of every row would take more
            than :data:`MAX_GATHER_BYTES` (use a minimize method instead).
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data.
        TimeoutError
            When a wait on the cluster takes longer than ``timeout``.
        RuntimeError
            When the client is closed, the cluster cannot be reached or a Dask
            computation was cancelled.
        """
        local = self._in_memory()
        before = local.nfev
        r = local.residuals(theta)
        self.nfev += local.nfev - before
        return r

    def jacobian(self, theta: Any) -> FloatArray:
        """Jacobian of :meth:`residuals`, shape ``(len(r), n_params)``, on the client.

        Parameters
        ----------
        theta : ndarray of shape (n_params,)
            The flat parameter vector (layout in :class:`~nncore.layout.Layout`); the cached
            point is reused when it equals the last one.

        Returns
        -------
        ndarray of shape (len(r), n_params)
            ``dr / dtheta``.

        Raises
        ------
        ValueError
            When the loss is not mse, or the Jacobian would take more than
            :data:`MAX_GATHER_BYTES` (use a minimize method instead).
        TypeError, ValueError
            For a ``theta`` of the wrong type or shape or with inf or NaN, or when float64
            overflowed on this data.
        TimeoutError
            When a wait on the cluster takes longer than ``timeout``.
        RuntimeError
            When the client is closed, the cluster cannot be reached or a Dask
            computation was cancelled.
        """
        local = self._in_memory()
        before = local.nfev, local.njev
        Jr = local.jacobian(theta)
        self.nfev += local.nfev - before[0]
        self.njev += local.njev - before[1]
        return Jr

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Release the persisted data and the workers' forward caches.

        Waits at most ``timeout`` for the workers to drop the caches.  A closed client, or
        a cluster that is gone or does not answer in time, is no error: what the workers
        held goes with them.
        """
        self._data = self._theta_f = None
        self._hosts = self._host_futures = None  # the actors go with their futures
        self._retired = []
        client = self.client
        if client.status != "running":
            return
        try:
            self._bounded(
                lambda: client.run(_forget, self._token, on_error="ignore", asynchronous=True),
                "the workers did not drop the forward caches",
            )
        except (TimeoutError, RuntimeError):  # unreachable, slow or closing
            pass

    def __enter__(self) -> DaskObjective:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ordered_sum(values: list[float]) -> float:
    """``values`` added left to right (the chunk order)."""
    total = 0.0
    for value in values:
        total += value
    return total
