"""The report of a gradient check: one type for every form, readable and JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class BlockError:
    """Errors of one block of parameters (``layer 2: W``), or of ``all`` for plain functions.

    ``rel_error = ||g_B - fd_B|| / ||fd_B||``; ``ratio = <g_B, fd_B> / ||fd_B||^2`` tells a
    scale error (0.5: a missing factor 2, -1: a flipped sign) from scattered ones.
    """

    name: str
    size: int
    rel_error: float
    ratio: float
    n_bad: int
    passed: bool


@dataclass
class Coordinate:
    """One coordinate compared with its central difference."""

    name: str
    index: int
    grad: float
    fd: float
    error_bar: float
    rel_error: float
    passed: bool
    excess: float = 0.0
    """``|g - fd| / tolerance``: above 1 fails; the worst coordinates are sorted by it."""


@dataclass
class GradientReport:
    """What :func:`nncore.check_gradient` found.

    Attributes
    ----------
    passed : bool
        True when the verdict is ``"passed"``.
    verdict : {"passed", "failed", "inconclusive"}
        ``failed`` when an oracle found an error; ``inconclusive`` when none did but none
        could have either: every difference lies within its tolerance of 0 or crosses a kink,
        the Taylor test would pass a gradient of zeros as well, and there is no JAX
        comparison; ``passed`` otherwise.
    reasons : list of str
        One line per oracle: what it measured, against which tolerance, and its verdict.
    n : int
        Number of parameters.
    mode : {"coordinates", "directions"}
        Per-coordinate central differences (``O(n)`` evaluations) or random directions with
        bisection (``O(k + log n)``).
    fd_rel_error : float or None
        ``||g - fd|| / ||fd||`` over the coordinates away from kinks (coordinates mode).
    blocks : list of BlockError
        Per block, the worst first.  In directions mode each block is judged on one random
        direction supported on it, ``ratio`` being ``g.u / fd`` there.
    worst : list of Coordinate
        The worst coordinates, failing ones first.
    located : str or None
        Directions mode: the coordinate the bisection ended on, when a check failed (a range
        ``first .. last`` where neither half of it fails alone; a note when both halves of
        a split failed, so that more than one coordinate is wrong).
    directions : dict or None
        ``k`` random unit directions: number checked, failed and unresolved, worst relative
        error.
    taylor : dict
        The Taylor test: steps, remainders, observed rate, verdict (``"not run"`` where the
        fast profile's coordinates settled everything it could add).
    check_grad : float or None
        ``scipy.optimize.check_grad`` as is (2-norm of the forward-difference error with
        step sqrt(eps), absolute; a random direction in directions mode); None in the fast
        profile, which does not spend its ``n + 1`` evaluations.
    jax_rel_error : float or None
        Networks: ``||g - g_jax|| / ||g_jax||``; None when JAX is missing or not a network.
    hessp : dict or None
        The Hessian-vector checks, when a ``hessp`` was given; ``bad_entries`` names the
        entries of ``Hv`` outside the difference's tolerance, the worst first (up to 10).
    kink_params : list of str
        Coordinates whose difference step crosses a relu-like kink: judged apart.
    unresolved : list of str
        Coordinates mode: the coordinates (away from kinks) whose difference lies within its
        tolerance of 0, so that there the comparison only bounds ``|g_i - fd_i|`` by the
        tolerance; a gradient entry of 0 would pass too.
    nfev, ngev, nhev : int
        Evaluations of the function, gradient and Hessian-vector product by the checks.
    profile : {"fast", "thorough"}
        The profile of the check (``docs/verification.md``: cost and scheme of each).
    n_extra : int
        Coordinates mode: the coordinates given step doubling and a fourth difference (two
        more evaluations each): all of them in the thorough profile, in the fast one those
        whose first central difference did not settle the verdict.
    resolution : float or None
        The smallest error in one entry, relative to that entry, that the check reports:
        coordinates mode, the median of ``tolerance_i / |fd_i|`` over the resolved
        coordinates; directions mode, ``sqrt(n) tol_u / rms(g)`` (median over the
        directions), above the target ``RESOLUTION_TARGET = 1e-2`` a pass is inconclusive
        unless JAX binds.
    nondifferentiable : list of str
        Function form, coordinates mode: the coordinates along which ``f`` is not
        differentiable at ``x`` (one-sided differences that disagree beyond their error bars)
        and the gradient is one of the one-sided derivatives; judged apart, also listed in
        ``kink_params``.
    """

    passed: bool
    reasons: list[str]
    n: int
    mode: str
    fd_rel_error: float | None
    blocks: list[BlockError]
    worst: list[Coordinate]
    located: str | None
    directions: dict[str, Any] | None
    taylor: dict[str, Any]
    check_grad: float | None
    jax_rel_error: float | None
    hessp: dict[str, Any] | None
    kink_params: list[str] = field(default_factory=list)
    verdict: str = "passed"
    unresolved: list[str] = field(default_factory=list)
    nfev: int = 0
    ngev: int = 0
    nhev: int = 0
    profile: str = "fast"
    n_extra: int = 0
    resolution: float | None = None
    nondifferentiable: list[str] = field(default_factory=list)

    @property
    def worst_param(self) -> str:
        """Name of the worst coordinate (the bisection's end point in directions mode)."""
        if self.worst:
            return self.worst[0].name
        return self.located or ""

    @property
    def bad_blocks(self) -> list[str]:
        """Names of the blocks with an error."""
        return [b.name for b in self.blocks if not b.passed]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain Python types (JSON-ready)."""

        def plain(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, np.generic):
                return value.item()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))

    def __str__(self) -> str:
        lines = [
            f"gradient check: {self.verdict.upper()}  "
            f"({self.n} parameters, {self.mode} mode, {self.profile} profile; {self.nfev} "
            f"function, {self.ngev} "
            f"gradient, {self.nhev} Hessian-vector evaluations)"
        ]
        lines += [f"  - {r}" for r in self.reasons]
        if self.blocks:
            lines.append("  blocks (worst first):")
            lines.append(f"    {'block':<16}{'size':>7}{'rel. error':>12}{'g/fd':>9}{'bad':>6}")
            for b in self.blocks[:12]:
                lines.append(
                    f"    {b.name:<16}{b.size:>7}{b.rel_error:>12.2e}{b.ratio:>9.3f}"
                    f"{b.n_bad:>6}{'' if b.passed else '  <-'}"
                )
        if self.worst:
            lines.append("  worst coordinates (by |g - fd| / tolerance; above 1 fails):")
            lines.append(
                f"    {'name':<22}{'gradient':>13}{'central diff':>14}"
                f"{'error bar':>11}{'rel. error':>12}{'|g-fd|/tol':>12}"
            )
            for c in self.worst[:5]:
                lines.append(
                    f"    {c.name:<22}{c.grad:>13.6g}{c.fd:>14.6g}{c.error_bar:>11.1e}"
                    f"{c.rel_error:>12.2e}{c.excess:>12.2e}{'' if c.passed else '  <-'}"
                )
        if self.unresolved:
            shown = ", ".join(self.unresolved[:5]) + (", ..." if len(self.unresolved) > 5 else "")
            lines.append(
                f"  unresolved ({len(self.unresolved)}: |fd| within its tolerance of 0, so only "
                f"|g - fd| <= tolerance is checked there): {shown}"
            )
        if self.located:
            lines.append(f"  bisection ends on: {self.located}")
        return "\n".join(lines)
