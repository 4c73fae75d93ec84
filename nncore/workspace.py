r"""Buffers for one network and one batch size, allocated once and reused call after call.

Every array of a forward and backward pass over ``N`` rows has a fixed shape, so
:class:`Workspace` allocates them once: ``Z_l`` and ``A_l`` (the forward cache), ``D_l``
(the deltas), ``f'_l(Z_l)`` (the scratch of the in-place derivative) and the flat gradient.
A loss and gradient then run with no temporary larger than ``(N, n_out)``, which matters more
than it seems: a fresh ``(N, 64)`` array per step costs page faults each time the allocator
has handed memory back to the system (``docs/benchmarks.md``).

The memory layout is the seed's.  The forward pass computes ``Z_l^T = W_l A_{l-1}^T + b_l``
(``kernels.py``), so ``Z_l`` is the transpose of a C-ordered ``(n_l, N)`` array, that is an
F-ordered ``(N, n_l)`` array; every other buffer is allocated in that same layout, so that
element-wise work (``D_l * f'(Z_l)``, ``A_L - Y``) runs over memory in order instead of
across strides, which costs several times more.

A workspace is not thread-safe: one per thread (``nncore.objective`` keeps one per worker in
:class:`Spaces`, and :class:`~nncore.MLP` one for each thread's public calls in
:class:`ThreadWorkspaces`).  It holds no results: whatever nncore returns to a caller is a
fresh array (or the caller's ``out=``), never one of these buffers, which the next call
overwrites.  This module owns the buffers and the policy of keeping them; it reads a network
only through its :class:`~nncore.architecture.Architecture`.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from .architecture import Architecture

Array = np.ndarray

WORKSPACE_CACHE_BYTES = 2**28
"""A thread keeps the buffers of its last public evaluation (:meth:`MLP.loss_and_grad`,
:meth:`MLP.hessp`, ...) for its next one when they take at most this many bytes (256 MiB),
the curvature products' buffers included; larger evaluations allocate theirs call by call."""


def feature_major(N: int, n: int, dtype: type = np.float64) -> Array:
    """An uninitialised ``(N, n)`` array stored as the transpose of a C-ordered ``(n, N)``."""
    return np.empty((n, N), dtype=dtype).T


class RBuffers(NamedTuple):
    """Buffers of the R-pass (``nncore.curvature``), one per layer ``l = 1..L``:
    ``R{Z_l}^T`` C-ordered ``(n_l, N)``, and ``R{A_l}``, ``R{G_l}`` (then ``R{D_l}``) and a
    product scratch ``T``, each ``(N, n_l)`` in the kernels' layout."""

    RZT: tuple[Array, ...]
    RA: tuple[Array, ...]
    RG: tuple[Array, ...]
    T: tuple[Array, ...]


def matmul_fm(a: Array, b: Array) -> Array:
    """``a @ b`` into a new :func:`feature_major` array (the kernels' layout)."""
    return np.matmul(a, b, out=feature_major(a.shape[0], b.shape[1]))


class Workspace:
    """Preallocated arrays for evaluating a network on batches of exactly ``N`` rows.

    Parameters
    ----------
    arch : Architecture
    N : int
        Number of rows (samples) of the batches it serves.

    Attributes
    ----------
    ZT : tuple of ndarray
        ``Z_l^T`` for ``l = 1..L``, C-ordered, shape ``(n_l, N)``; ``ZT[l - 1].T`` is ``Z_l``.
    A : tuple of ndarray or None
        ``A_l`` for ``l = 1..L``, shape ``(N, n_l)``; ``None`` for an identity layer, whose
        ``A_l`` is ``Z_l`` itself.
    D : tuple of ndarray
        ``D_l = dJ/dZ_l`` for ``l = 1..L`` (the output gradient is written into ``D[L - 1]``).
    S : tuple of ndarray
        Scratch for ``f'_l(Z_l)``, dtype of the layer's ``Activation.df_dtype``.
    g : ndarray of shape (n_params,)
        A flat gradient, with its layer views ``g_blocks`` made once.

    The R-pass of the curvature products has buffers of its own, :meth:`r`, allocated at the
    first product.
    """

    def __init__(self, arch: Architecture, N: int) -> None:
        self.N = N
        widths = arch.sizes[1:]
        acts = arch.acts
        self.ZT = tuple(np.empty((n, N)) for n in widths)
        self.A = tuple(
            None if act.name == "identity" else feature_major(N, n) for n, act in zip(widths, acts)
        )
        self.D = tuple(feature_major(N, n) for n in widths)
        self.S = tuple(feature_major(N, n, act.df_dtype) for n, act in zip(widths, acts))
        self.g = np.empty(arch.n_params)
        self.g_blocks = arch.layout.unpack(self.g)
        self._widths = widths
        self._r: RBuffers | None = None

    def r(self) -> RBuffers:
        """The buffers of the curvature products (R-pass), allocated at the first product."""
        if self._r is None:
            N, widths = self.N, self._widths
            self._r = RBuffers(
                RZT=tuple(np.empty((n, N)) for n in widths),
                RA=tuple(feature_major(N, n) for n in widths),
                RG=tuple(feature_major(N, n) for n in widths),
                T=tuple(feature_major(N, n) for n in widths),
            )
        return self._r

    @property
    def max_nbytes(self) -> int:
        """Bytes the buffers take once the R-pass ones are allocated too."""
        if self._r is not None:
            return self.nbytes
        return self.nbytes + len(RBuffers._fields) * 8 * self.N * sum(self._widths)

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers (the R-pass ones once allocated)."""
        arrays = [*self.ZT, *(a for a in self.A if a is not None), *self.D, *self.S, self.g]
        if self._r is not None:
            arrays += [a for group in self._r for a in group]
        return sum(a.nbytes for a in arrays)


class Spaces:
    """One thread's workspaces, one per batch size it has met: chunked evaluation meets the
    chunk size and the remainder, the Gauss-Newton matrix of mse its blocks of rows."""

    def __init__(self, arch: Architecture) -> None:
        self._arch = arch
        self._by_size: dict[int, Workspace] = {}

    def get(self, N: int) -> Workspace:
        """The workspace for ``N`` rows, allocated on first use."""
        ws = self._by_size.get(N)
        if ws is None:
            ws = self._by_size[N] = Workspace(self._arch, N)
        return ws


class ThreadWorkspaces:
    """Each thread's workspace of its last evaluation, for the public calls of
    :class:`~nncore.MLP`.

    :meth:`get` returns the calling thread's last workspace when it had ``N`` rows too;
    otherwise it releases it and makes a new one, which it keeps for the next call when its
    buffers (those of the curvature products included) take at most
    :data:`WORKSPACE_CACHE_BYTES`.  Threads never share one.  Pickles as its architecture
    alone: buffers are not state.
    """

    def __init__(self, arch: Architecture) -> None:
        self._arch = arch
        self._local = threading.local()

    def __reduce__(self):
        return (type(self), (self._arch,))

    @property
    def current(self) -> Workspace | None:
        """The calling thread's kept workspace, or ``None``."""
        return getattr(self._local, "ws", None)

    def get(self, N: int) -> Workspace:
        """A workspace for ``N`` rows, the calling thread's kept one when it fits."""
        ws = self.current
        if ws is not None and ws.N == N:
            return ws
        self._local.ws = None  # release the old buffers before allocating new ones
        ws = Workspace(self._arch, N)
        if ws.max_nbytes <= WORKSPACE_CACHE_BYTES:
            self._local.ws = ws
        return ws
