"""The flat parameter layout: where each layer's ``W_l`` and ``b_l`` live inside ``theta``.

``theta`` is one 1-D float64 array holding, for each layer in order, ``W_l.ravel()``
(C order, ``W_l`` of shape ``(n_l, n_{l-1})``) then ``b_l`` (shape ``(n_l,)``).  For the
seed's sizes ``[2, 2, 1]``: ``W1 = p[:4].reshape(2, 2)``, ``b1 = p[4:6]``,
``W2 = p[6:8].reshape(1, 2)``, ``b2 = p[8:]``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from ._validation import as_real_array, require_finite

Array = np.ndarray


class Layout:
    """Offsets and shapes of the per-layer blocks of a flat parameter vector.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, h_1, ..., n_out]``, every entry >= 1.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(sizes)
        self.shapes: tuple[tuple[int, int], ...] = tuple(
            (n_out, n_in) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])
        )
        starts = []
        offset = 0
        for n_out, n_in in self.shapes:
            starts.append(offset)
            offset += n_out * n_in + n_out
        #: offset of ``W_l`` inside theta, for l = 1..L (index l - 1)
        self.starts: tuple[int, ...] = tuple(starts)
        self.n_params: int = offset
        mask = np.zeros(offset, dtype=bool)
        for start, (n_out, n_in) in zip(self.starts, self.shapes):
            mask[start : start + n_out * n_in] = True
        mask.flags.writeable = False
        self._weight_mask = mask  # built once: the chunked paths read it on every call

    def unpack(self, theta: Array) -> list[tuple[Array, Array]]:
        """Return ``[(W_1, b_1), ..., (W_L, b_L)]`` as views into ``theta`` (no copy).

        ``theta`` must be a C-contiguous 1-D array of length ``n_params``; writes into the
        views write into ``theta``.
        """
        pairs = []
        for start, (n_out, n_in) in zip(self.starts, self.shapes):
            mid = start + n_out * n_in
            pairs.append((theta[start:mid].reshape(n_out, n_in), theta[mid : mid + n_out]))
        return pairs

    def pack(self, pairs: Sequence[tuple[Array, Array]]) -> Array:
        """Concatenate ``[(W_1, b_1), ...]`` into a new flat float64 vector.

        Raises ``ValueError`` when the number of layers, a block's shape or a value is wrong
        (not finite), ``TypeError`` when a block is not real numbers.
        """
        pairs = list(pairs)
        if len(pairs) != len(self.shapes):
            raise ValueError(f"pack needs {len(self.shapes)} (W, b) pairs, got {len(pairs)}")
        theta = np.empty(self.n_params)
        for layer, ((W, b), (Wv, bv)) in enumerate(zip(pairs, self.unpack(theta)), start=1):
            for name, value, view in (("W", W, Wv), ("b", b, bv)):
                value = as_real_array(value, f"layer {layer}: {name}")
                require_finite(value, f"layer {layer}: {name}")
                if value.shape != view.shape:
                    raise ValueError(
                        f"layer {layer}: {name} must have shape {view.shape}, got {value.shape}"
                    )
                view[...] = value
        return theta

    def locate(self, index: int) -> tuple[int, str, tuple[int, ...]]:
        """Return ``(layer, "W" or "b", position)`` of entry ``index`` of theta (layer from 1)."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"parameter index must be an int, got {type(index).__name__}")
        index = int(index)
        if not 0 <= index < self.n_params:
            raise IndexError(f"parameter index must lie in [0, {self.n_params}), got {index}")
        layer = int(np.searchsorted(self.starts, index, side="right"))
        n_out, n_in = self.shapes[layer - 1]
        local = index - self.starts[layer - 1]
        if local < n_out * n_in:
            return layer, "W", divmod(local, n_in)
        return layer, "b", (local - n_out * n_in,)

    def param_name(self, index: int) -> str:
        """Human name of entry ``index`` of theta, e.g. ``"layer 2: W[0, 1]"``."""
        layer, block, pos = self.locate(index)
        return f"layer {layer}: {block}[{', '.join(map(str, pos))}]"

    def blocks(self) -> list[tuple[str, slice]]:
        """``[("layer 1: W", slice), ("layer 1: b", slice), ...]``: where each block lives."""
        out = []
        for layer, (start, (n_out, n_in)) in enumerate(zip(self.starts, self.shapes), start=1):
            mid = start + n_out * n_in
            out += [
                (f"layer {layer}: W", slice(start, mid)),
                (f"layer {layer}: b", slice(mid, mid + n_out)),
            ]
        return out

    def weight_mask(self) -> Array:
        """Boolean mask over theta, True on weight entries and False on biases (read-only)."""
        return self._weight_mask
