"""L-BFGS, batched: torch.optim.LBFGS's algorithm for R runs at once, each with its own history.

One ``step`` of the batched rule is one ``torch.optim.LBFGS.step(closure)`` call: up to
``max_iter`` iterations, with torch's stopping tests, state carried across calls as torch
carries it. Per run::

    f, g <- f(x), grad f(x)                                   (torch's orig_loss; returned)
    stop if max|g| <= tolerance_grad
    repeat (k = 1, 2, ...):
        n_iter <- n_iter + 1                                   (counted over all step calls)
        if n_iter == 1:  d <- -g, history empty, H_diag <- 1
        else:
            y <- g - g_prev,  s <- t d_prev
            if y.s > 1e-10:  push (s, y, 1 / y.s), dropping the oldest pair when m are held;
                             H_diag <- y.s / y.y
            d <- -H g by the two-loop recursion with H_0 = H_diag I
        g_prev <- g,  f_prev <- f
        t <- min(1, 1 / |g|_1) lr  if n_iter == 1  else  lr
        stop if g.d > -tolerance_change
        line_search_fn None:          x <- x + t d; re-evaluate f, g unless k == max_iter
        line_search_fn "strong_wolfe": t, f, g <- strong-Wolfe search from t; x <- x + t d
        stop if k == max_iter, or evaluations >= max_eval, or max|g| <= tolerance_grad,
             or max|t d| <= tolerance_change, or |f - f_prev| < tolerance_change

The strong-Wolfe search is torch's (:class:`optzoo.optimizers.linesearch.StrongWolfe`, shared
with BFGS and DFP): bracketing then zoom with safeguarded cubic interpolation, c1 = 1e-4,
c2 = 0.9, at most ``max_eval - evaluations so far`` evaluations. As in torch it runs with its own
default tolerance 1e-9 on the bracket width (torch does not pass ``tolerance_change`` to it).

Batched form. The history is a ring buffer ``(R, m, d)`` with a per-run start slot and count;
the two-loop recursion walks it from the newest pair by age, masked per run. The iterations and
the line search are one masked loop in which each pass makes exactly one evaluation, at each
running run's pending point: every run is its own state machine (new iteration, bracketing
phase, zoom phase, stopped), advanced with ``torch.where``, and the oracle counts only running
runs, so each run spends its own number of evaluations. Runs the harness has frozen
(``oracle.active`` False) are not advanced at all.

No Python loop runs over runs and no Python branch reads a run's values, with one exception:
the early-exit test of a masked loop. The evaluation loop starts each pass with
``if not running.any(): break``, a step in which no run starts an iteration returns after its
first evaluation, and a pass after which no run starts an iteration skips that start (with
``max_iter = 1``, every pass); the two masked loops of the two-loop recursion read the same
test once for all their passes, as the number of history ages any starting run holds. Such a
host sync never changes a result, it only stops work once no run needs it. It is also why the
``torch.optim`` drop-in (R = 1) calls its closure exactly as often as torch.optim.LBFGS does.

Agreement with torch.optim.LBFGS: the same operations in the same order, except that dot
products are taken row by row over the run axis (the same for every batch size) where torch
calls BLAS ``dot``; for d > 2 the two can differ in the last bit, which L-BFGS can amplify on
hard problems. With torch's dot in its place the rule follows torch step for step, closure
calls included, on every problem and configuration of tests/test_lbfgs.py.

References: Nocedal & Wright, Numerical Optimization (2nd ed., 2006), Algorithm 7.4 (two-loop
recursion), Algorithm 7.5 (L-BFGS), Algorithms 3.5-3.6 and section 3.5 (strong-Wolfe line search
with cubic interpolation); Liu & Nocedal 1989; torch/optim/lbfgs.py (after minFunc).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.linalg import row_sum
from optzoo.optimizers.base import Hyper, Optimizer
from optzoo.optimizers.linesearch import Masked, StrongWolfe
from optzoo.oracle import CountedOracle

LINE_SEARCHES = (None, "strong_wolfe")
# A curvature pair is kept only where y.s exceeds this (torch's test).
CURVATURE_MIN = 1e-10


class LBFGSState(NamedTuple):
    """torch.optim.LBFGS's state, per run; torch's names where torch has the field."""

    d: Tensor  # (R, d) last search direction
    t: Tensor  # (R,) last step length
    old_dirs: Tensor  # (R, m, d) ring buffer of y = g_new - g_old
    old_stps: Tensor  # (R, m, d) ring buffer of s = t d
    ro: Tensor  # (R, m) 1 / (y.s)
    start: Tensor  # (R,) int64, ring slot of the oldest pair
    count: Tensor  # (R,) int64, pairs held, <= m
    H_diag: Tensor  # (R,) initial inverse-Hessian scale y.s / y.y
    prev_flat_grad: Tensor  # (R, d) gradient at the start of the last iteration
    prev_loss: Tensor  # (R,) loss at the start of the last iteration
    n_iter: Tensor  # (R,) int64, iterations over all step calls
    func_evals: Tensor  # (R,) int64, evaluations over all step calls


@dataclass(eq=False)
class _Loop(Masked):
    """The per-run variables of one step's masked loop: :class:`LBFGSState`'s fields (same
    meaning and shapes), and where each run stands in this step call."""

    d: Tensor
    t: Tensor
    old_dirs: Tensor  # cloned on entry: the ring is written in place
    old_stps: Tensor
    ro: Tensor
    start: Tensor
    count: Tensor
    H_diag: Tensor
    prev_flat_grad: Tensor
    prev_loss: Tensor
    n_iter: Tensor
    func_evals: Tensor
    x: Tensor  # (R, d) the current iterate
    loss: Tensor  # (R,) f(x)
    g: Tensor  # (R, d) grad f(x)
    gtd: Tensor  # (R,) g.d of the current iteration
    n_local: Tensor  # (R,) int64, iterations in this call (torch's local n_iter)
    evals: Tensor  # (R,) int64, evaluations in this call (torch's current_evals)

    def state(self) -> LBFGSState:
        return LBFGSState(*(getattr(self, k) for k in LBFGSState._fields))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products ``(R, d), (R, d) -> (R,)``; each row's sum does not depend on R.

    For d = 2 the products' sum is :func:`optzoo.linalg.row_sum`, without a reduction over the
    2-long axis: the bits of ``linalg.vecdot`` (whose sum starts from +0, so -0 + -0 gives +0),
    signed zeros included, in every memory layout; tests/test_lbfgs.py checks it on zeros,
    infinities and NaNs.
    """
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return row_sum(a * b)
    return torch.linalg.vecdot(a, b)


def _slots(ring: Tensor) -> Tensor:
    """The ring ``(R, m, ...)`` as one element per slot, ``(R m, ...)``, for index_select and
    index_copy_ (see :func:`_elements`)."""
    return _elements(ring.view((ring.shape[0] * ring.shape[1],) + ring.shape[2:]))


def _elements(rows: Tensor) -> Tensor:
    """Real rows ``(k, 2)`` as ``(k,)`` complex numbers, which index_select and index_copy_ move
    ~3x faster than rows (a copy either way: the same bits); other rows as they are."""
    if rows.shape[1:] == (2,) and rows.dtype in (torch.float32, torch.float64):
        return torch.view_as_complex(rows)
    return rows


def _real(t: Tensor) -> Tensor:
    """:func:`_elements` back as real rows."""
    return torch.view_as_real(t) if t.is_complex() else t


class LBFGS(Optimizer):
    """Limited-memory BFGS with torch.optim.LBFGS's rule, per run, batched (see the module)."""

    name = "lbfgs"
    defaults = {
        "lr": 1.0,
        "max_iter": 20,
        "max_eval": None,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "history_size": 100,
        "line_search_fn": None,
    }
    # history_size fixes the buffer's shape; line_search_fn picks the program.
    flags = frozenset({"history_size", "line_search_fn"})

    def check(self, hp: Mapping[str, Any]) -> None:
        def integer_at_least_1(v: float) -> bool:
            return math.isfinite(v) and v >= 1 and v == math.floor(v)

        self.require("lr", hp["lr"], lambda v: v >= 0, "lr >= 0")
        self.require("max_iter", hp["max_iter"], integer_at_least_1, "an integer >= 1")
        if hp["max_eval"] is not None:
            self.require("max_eval", hp["max_eval"], integer_at_least_1, "None or an integer >= 1")
        for key in ("tolerance_grad", "tolerance_change"):
            self.require(key, hp[key], lambda v: v >= 0, f"{key} >= 0")
        m = hp["history_size"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigError(
                f"optimizer {self.name!r}: invalid history_size {m!r}; allowed: an integer >= 1"
            )
        if hp["line_search_fn"] not in LINE_SEARCHES:
            raise ConfigError(
                f"optimizer {self.name!r}: unknown line_search_fn {hp['line_search_fn']!r}; "
                f"allowed: None, 'strong_wolfe'"
            )

    def init(self, x: Tensor) -> LBFGSState:
        R, n = x.shape
        m = self.hp["history_size"]
        zeros = torch.zeros(R, dtype=torch.int64, device=x.device)
        return LBFGSState(
            d=torch.zeros_like(x),
            t=x.new_zeros(R),
            old_dirs=x.new_zeros(R, m, n),
            old_stps=x.new_zeros(R, m, n),
            ro=x.new_zeros(R, m),
            start=zeros,
            count=zeros,
            H_diag=x.new_ones(R),
            prev_flat_grad=torch.zeros_like(x),
            prev_loss=x.new_zeros(R),
            n_iter=zeros,
            func_evals=zeros,
        )

    def _per_run(self, x: Tensor, lr_scale: Hyper) -> dict[str, Tensor]:
        """The numeric hyperparameters as ``(R,)`` tensors (the counts as int64)."""
        keys = [k for k in self.defaults if k not in self.flags and self.hp[k] is not None]
        hp = self.per_run(x, lr_scale, keys=keys, counts=("max_iter", "max_eval"))
        if self.hp["max_eval"] is None:
            hp["max_eval"] = hp["max_iter"] * 5 // 4  # torch's default
        return hp

    @torch.no_grad()
    def step(self, x: Tensor, state: LBFGSState, oracle: CountedOracle, lr_scale: Hyper = 1.0):
        """One torch ``step(closure)`` call for every run: returns ``(x_new, state, f(x))``."""
        hp = self._per_run(x, lr_scale)
        wolfe = self.hp["line_search_fn"] == "strong_wolfe"
        R = x.shape[0]
        i64 = dict(dtype=torch.int64, device=x.device)

        f0, g0 = oracle.value_and_grad(x)
        running = ~(g0.abs().amax(-1) <= hp["tolerance_grad"])
        if oracle.active is not None:  # runs the harness has frozen need no work
            running = running & oracle.active
        if not running.any():  # early exit: no run starts an iteration, so none changes
            return x, state._replace(func_evals=state.func_evals + 1), f0
        v = _Loop(
            **state._replace(
                # In-place ring writes below must not reach the caller's state tensors.
                old_dirs=state.old_dirs.clone(memory_format=torch.contiguous_format),
                old_stps=state.old_stps.clone(memory_format=torch.contiguous_format),
                ro=state.ro.clone(memory_format=torch.contiguous_format),
                func_evals=state.func_evals + 1,
            )._asdict(),
            x=x,
            loss=f0,
            g=g0,
            gtd=x.new_zeros(R),
            n_local=torch.zeros(R, **i64),
            evals=torch.ones(R, **i64),
        )
        search = StrongWolfe(x) if wolfe else None

        def start_search(go: Tensor) -> Tensor:
            # torch gives the search what is left of max_eval.
            return search.start(go, v.t, v.loss, v.g, v.gtd, v.d, hp["max_eval"] - v.evals)

        running = self._begin(running, v, hp)
        running = start_search(running) if wolfe else self._move(running, v, hp)
        while True:
            if not running.any():  # early exit: stops work, never changes a result
                break
            z = torch.addcmul(v.x, search.t[:, None], v.d) if wolfe else v.x
            f_new, g_new = oracle.value_and_grad(z, running)
            if wolfe:
                ended = search.advance(running, f_new, g_new, _dot(g_new, v.d))
                n = search.evals
                v.put(
                    ended,
                    t=search.t,
                    loss=search.f,
                    g=search.g,
                    x=torch.addcmul(v.x, search.t[:, None], v.d),
                    evals=v.evals + n,
                    func_evals=v.func_evals + n,
                )
            else:
                v.put(running, loss=f_new, g=g_new, evals=v.evals + 1, func_evals=v.func_evals + 1)
                ended = running
            go = ended & ~self._converged(v, hp)
            running = (running & ~ended) if wolfe else go
            if not go.any():  # early exit: a new iteration for no run changes nothing
                continue
            go = self._begin(go, v, hp)
            running = (running | start_search(go)) if wolfe else self._move(go, v, hp)

        return v.x, v.state(), f0

    # -- the pieces of the loop ------------------------------------------------------------------
    def _begin(self, go: Tensor, v: _Loop, hp: dict[str, Tensor]) -> Tensor:
        """Start an iteration where ``go``: update the history, find d and t; returns the runs
        that go on (those whose directional derivative g.d is below -tolerance_change)."""
        m = self.hp["history_size"]
        R, n = v.g.shape
        # Row r's slot k of the ring is row r * m + k of its (R m, d) view.
        base = torch.arange(R, device=go.device) * m
        v.put(go, n_iter=v.n_iter + 1, n_local=v.n_local + 1)
        first = v.n_iter == 1
        v.put(go & first, start=0, count=0, H_diag=1.0)

        y = v.g - v.prev_flat_grad
        s = v.d * v.t[:, None]
        ys = _dot(y, s)
        accept = go & ~first & (ys > CURVATURE_MIN)
        full = v.count == m
        # The next free slot, or the oldest pair's when full; written where ``accept``.
        at_slot = base + (v.start + v.count) % m
        pairs = (
            (v.old_dirs, y, accept[:, None]),
            (v.old_stps, s, accept[:, None]),
            (v.ro, 1 / ys, accept),
        )
        for ring, new, mask in pairs:
            slots = _slots(ring)
            keep = _real(slots.index_select(0, at_slot))
            slots.index_copy_(0, at_slot, _elements(torch.where(mask, new, keep)))
        v.put(accept & full, start=(v.start + 1) % m)
        v.put(accept & ~full, count=v.count + 1)
        v.put(accept, H_diag=ys / _dot(y, y))

        # Two-loop recursion over the pairs by age (0 = newest), gathered into age order once,
        # age-major: (ages, R, d). A pair a run does not hold gets coefficient 0; its slot holds
        # zeros (slots past ``count`` are never written), so adding 0 times it leaves q and r
        # bit for bit.
        live = go & ~first
        # The early-exit test of the two masked loops, read once: how many ages any run holds.
        n_ages = int(torch.where(live, v.count, 0).max()) if R else 0
        ages = torch.arange(n_ages, device=go.device)[:, None]
        held = live & (ages < v.count)  # (ages, R)
        newest = (v.start + v.count - 1) % m
        at_age = base + newest - ages  # the slot of each age, (newest - age) mod m
        at_age = torch.where(ages > newest, at_age + m, at_age).view(-1)
        stps = _real(_slots(v.old_stps).index_select(0, at_age)).view(n_ages, R, n)
        dirs = _real(_slots(v.old_dirs).index_select(0, at_age)).view(n_ages, R, n)
        ro = torch.where(held, _slots(v.ro).index_select(0, at_age).view(n_ages, R), 0.0)
        neg_ro = -ro
        q = -v.g
        neg_alphas = []
        for a in range(n_ages):
            neg_al = _dot(stps[a], q) * neg_ro[a]  # -(s.q / y.s), torch's alpha=-al
            q.addcmul_(neg_al.unsqueeze(1), dirs[a])
            neg_alphas.append(neg_al)
        r = q * v.H_diag[:, None]
        for a in reversed(range(n_ages)):
            be = _dot(dirs[a], r) * ro[a]
            r.addcmul_((neg_alphas[a] + be).unsqueeze(1), stps[a], value=-1)

        inv_l1 = 1.0 / row_sum(v.g.abs())
        t_first = torch.where(inv_l1 < 1.0, inv_l1, torch.ones_like(inv_l1)) * hp["lr"]
        v.put(
            go,
            d=torch.where(first[:, None], -v.g, r),
            prev_flat_grad=v.g,
            prev_loss=v.loss,
            t=torch.where(first, t_first, hp["lr"]),
        )
        v.put(go, gtd=_dot(v.g, v.d))
        return go & ~(v.gtd > -hp["tolerance_change"])

    @staticmethod
    def _move(go: Tensor, v: _Loop, hp: dict[str, Tensor]) -> Tensor:
        """Fixed step x + t d where ``go``; returns the runs that re-evaluate there (torch skips
        the evaluation in the last iteration of a call)."""
        v.put(go, x=torch.addcmul(v.x, v.t[:, None], v.d))
        return go & (v.n_local != hp["max_iter"])

    @staticmethod
    def _converged(v: _Loop, hp: dict[str, Tensor]) -> Tensor:
        """torch's end-of-iteration stopping tests, per run."""
        return (
            (v.n_local == hp["max_iter"])
            | (v.evals >= hp["max_eval"])
            | (v.g.abs().amax(-1) <= hp["tolerance_grad"])
            | ((v.d * v.t[:, None]).abs().amax(-1) <= hp["tolerance_change"])
            | ((v.loss - v.prev_loss).abs() < hp["tolerance_change"])
        )
