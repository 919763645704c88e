"""Batch-invariant layers and losses for the neural landscapes (:mod:`optzoo.problems.neural`).

A run's numbers must not depend on how many runs share its batch (DESIGN, principle 1), and a
batched matmul cannot promise that: MKL picks its kernel by shape, so the same product rounds
differently alone and among many. So:

- the first layer, whose input (the data) all runs share, is one GEMM (:func:`_gemm_layer`): each
  run's weights are a block of rows, padded to a multiple of :data:`_GEMM_ROWS`, against the data.
  A row of the product is then the same dot products whatever rows stand beside it (measured;
  ``tests/test_neural.py`` checks it), and autograd's gradient for it is the same kind of GEMM;
- a layer whose weights and inputs both belong to the run (hidden -> output; the first layer on a
  mini-batch, whose rows differ per run) is a loop of elementwise multiply-adds over its input
  width (:class:`_Mix`; :class:`_Readout` for one output), and its weight gradient sums rows of
  products (:class:`_Dot`);
- cross-entropy is one fused pass (:class:`_CrossEntropy`, :class:`_SoftmaxGrad`); every sum over
  data is taken row by row, never by one row split across threads (:func:`_row_sum`).

The custom Functions differentiate twice (``oracle.hessian``'s double backward) and support
``torch.func`` (vmap folds its batch into the run axis; forward-mode for ``torch.func.hessian``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# Each run's block of rows in the first-layer GEMM is padded to a multiple of this. Measured on
# MKL (AVX2, float64 and float32): blocks of 4 or 8 rows give a run the same numbers for any R and
# any position in the batch; blocks of 1 or 3 rows do not (a product of 1 or 3 rows, R = 1, runs
# another kernel). The other layout, data @ weights.T, differs for every R.
_GEMM_ROWS = 8


def _row_sum(v: Tensor) -> Tensor:
    """``v.sum(-1)``, each row summed the same way however many rows there are.

    One thread sums each row when there are several; ``torch.sum`` splits a lone long row (>= 32768
    values) across threads instead, which rounds differently. So a lone row is summed beside a
    copy of itself.
    """
    lead = v.shape[:-1]
    flat = v.reshape(-1, v.shape[-1])
    if flat.shape[0] == 1:
        return torch.cat([flat, flat]).sum(-1)[:1].reshape(lead)
    return flat.sum(-1).reshape(lead)


def _fold_vmap(info, in_dims, *args: Tensor | None) -> list[Tensor | None]:
    """Fold vmap's batch dimension into the run axis: ``(V, R, ...)`` -> ``(V * R, ...)``.

    The building blocks are batched over runs already, so under ``torch.func.vmap`` they run once
    on V * R runs. An unbatched argument with a single leading row (data shared by all runs) stays
    as it is and broadcasts.
    """
    V = info.batch_size
    R = max(
        a.shape[0] if d is None else a.shape[1 if d == 0 else 0]
        for a, d in zip(args, in_dims, strict=True)
        if a is not None
    )
    out = []
    for a, d in zip(args, in_dims, strict=True):
        if a is None or (d is None and a.shape[0] == 1):
            out.append(a)
            continue
        a = a.movedim(d, 0) if d is not None else a.unsqueeze(0)
        out.append(a.expand(V, R, *a.shape[2:]).reshape(V * R, *a.shape[2:]))
    return out


class _Mix(torch.autograd.Function):
    """``Z[r, c, i] = b[r, c] + sum_j W[r, c, j] * T[r, j, i]``, the sum taken in order of j.

    A linear layer with per-run weights ``W (R, C, J)`` and biases ``b (R, C)`` (or None) applied to
    features ``T (R, J, n)`` (or ``(1, J, n)``: data shared by all runs). Elementwise multiply-adds
    only, so run r's numbers do not depend on R. Its derivatives are :class:`_Mix` and
    :class:`_Dot` again, so it differentiates to any order (double backward, ``torch.func``).
    """

    @staticmethod
    def forward(T: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
        Ws = W.unsqueeze(-1)  # (R, C, J, 1)
        Ts = T.unsqueeze(1)  # (R, 1, J, n)
        if b is None:
            Z = Ws[:, :, 0] * Ts[:, :, 0]
        else:
            Z = torch.addcmul(b.unsqueeze(-1), Ws[:, :, 0], Ts[:, :, 0])
        for j in range(1, W.shape[-1]):
            Z.addcmul_(Ws[:, :, j], Ts[:, :, j])
        return Z

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        T, W, _ = inputs
        ctx.save_for_backward(T, W)
        ctx.save_for_forward(T, W)
        ctx.out_shape = output.shape

    @staticmethod
    def backward(ctx, G: Tensor):
        T, W = ctx.saved_tensors
        gT = gW = gb = None
        if ctx.needs_input_grad[0]:
            gT = _Mix.apply(G, W.transpose(-1, -2), None).sum_to_size(T.shape)
        if ctx.needs_input_grad[1]:
            gW = _Dot.apply(G, T)
        if ctx.needs_input_grad[2]:
            gb = _row_sum(G)
        return gT, gW, gb

    @staticmethod
    def jvp(ctx, dT: Tensor | None, dW: Tensor | None, db: Tensor | None) -> Tensor:
        T, W = ctx.saved_tensors
        parts = []
        if dT is not None:
            parts.append(_Mix.apply(dT, W, None))
        if dW is not None:
            parts.append(_Mix.apply(T, dW, None))
        if db is not None:
            parts.append(db.unsqueeze(-1))
        return sum(parts[1:], parts[0]).expand(ctx.out_shape)

    @staticmethod
    def vmap(info, in_dims, T, W, b):
        T, W, b = _fold_vmap(info, in_dims, T, W, b)
        Z = _Mix.apply(T, W, b)
        return Z.view(info.batch_size, -1, *Z.shape[1:]), 0


class _Dot(torch.autograd.Function):
    """``D[r, c, j] = sum_i G[r, c, i] * T[r, j, i]`` for ``G (R, C, n)``, ``T (R or 1, J, n)``.

    Every entry is one row of n products summed by :func:`_row_sum`; the Python loop runs over
    the smaller of C and J (the same products and sums either way).
    """

    @staticmethod
    def forward(G: Tensor, T: Tensor) -> Tensor:
        R, C, n = G.shape[0], G.shape[1], G.shape[2]
        J = T.shape[1]
        R = max(R, T.shape[0])
        # One buffer for the products, reused: a fresh (R, C, n) tensor per term costs as much as
        # the product itself.
        if C <= J:
            buf = G.new_empty(R, J, n)
            return torch.stack(
                [_row_sum(torch.mul(G[:, c, None], T, out=buf)) for c in range(C)], dim=1
            )
        buf = G.new_empty(R, C, n)
        return torch.stack(
            [_row_sum(torch.mul(G, T[:, None, j], out=buf)) for j in range(J)], dim=2
        )

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, D: Tensor):
        G, T = ctx.saved_tensors
        gG = gT = None
        if ctx.needs_input_grad[0]:
            gG = _Mix.apply(T, D, None).sum_to_size(G.shape)
        if ctx.needs_input_grad[1]:
            gT = _Mix.apply(G, D.transpose(-1, -2), None).sum_to_size(T.shape)
        return gG, gT

    @staticmethod
    def jvp(ctx, dG: Tensor | None, dT: Tensor | None) -> Tensor:
        G, T = ctx.saved_tensors
        parts = []
        if dG is not None:
            parts.append(_Dot.apply(dG, T))
        if dT is not None:
            parts.append(_Dot.apply(G, dT))
        return sum(parts[1:], parts[0])

    @staticmethod
    def vmap(info, in_dims, G, T):
        G, T = _fold_vmap(info, in_dims, G, T)
        D = _Dot.apply(G, T)
        return D.view(info.batch_size, -1, *D.shape[1:]), 0


class _Readout(torch.autograd.Function):
    """One output unit: ``z[r, i] = b[r] + sum_j w[r, j] * T[r, j, i]``.

    :class:`_Mix` with C = 1, as one product and one sum over the hidden axis (each output summed
    in the same order for any R) and a backward of plain differentiable ops, so a Hessian's
    double backward runs as C++ nodes only (~1.5x faster than through _Mix). Sums over data go
    through :func:`_row_sum`: autograd's own gradient of a broadcast bias would split a lone run's
    long row across threads.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(T: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return (w.unsqueeze(-1) * T).sum(1) + b.unsqueeze(-1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        T, w, _ = inputs
        ctx.save_for_backward(T, w)
        ctx.save_for_forward(T, w)

    @staticmethod
    def backward(ctx, G: Tensor):
        T, w = ctx.saved_tensors
        Gs = G.unsqueeze(1)
        gT = w.unsqueeze(-1) * Gs if ctx.needs_input_grad[0] else None
        gw = _row_sum(Gs * T) if ctx.needs_input_grad[1] else None
        gb = _row_sum(G) if ctx.needs_input_grad[2] else None
        return gT, gw, gb

    @staticmethod
    def jvp(ctx, dT: Tensor | None, dw: Tensor | None, db: Tensor | None) -> Tensor:
        T, w = ctx.saved_tensors
        out = torch.zeros(T.shape[0], T.shape[-1], dtype=T.dtype, device=T.device)
        if dT is not None:
            out = out + (w.unsqueeze(-1) * dT).sum(1)
        if dw is not None:
            out = out + (dw.unsqueeze(-1) * T).sum(1)
        if db is not None:
            out = out + db.unsqueeze(-1)
        return out


def _gemm_layer(W: Tensor, b: Tensor, XT: Tensor) -> Tensor:
    """``W[r] @ XT + b[r]`` for every run r: ``W (R, H, K)``, ``b (R, H)``, ``XT (K, n)``.

    One GEMM with the runs stacked as rows against the shared data, each run's block padded with
    zero rows to a multiple of :data:`_GEMM_ROWS`, so the kernel and the rounding of a run's rows
    are the same for every R. Autograd's gradient for W is ``G @ XT.T``, again the runs as rows.
    """
    R, H, K = W.shape
    pad = -H % _GEMM_ROWS
    if pad:
        W = F.pad(W, (0, 0, 0, pad))
        b = F.pad(b, (0, pad))
    A = torch.addmm(b.reshape(-1, 1), W.reshape(-1, K), XT)
    return A.view(R, H + pad, -1)[:, :H]


class _CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy per run, ``-mean_i log softmax(Z[r, :, i])[y[r, i]]``, and softmax.

    ``Z (R, C, n)`` are logits with the classes on axis 1, ``y (R or 1, n)`` labels. Returns the
    loss ``(R,)`` and the probabilities (kept for the gradient, ``P - onehot(y)``). One exp per
    logit; ``F.cross_entropy`` on the same layout takes 3x as long, forward and backward.
    """

    @staticmethod
    def forward(Z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        R, n = Z.shape[0], Z.shape[-1]
        m = Z.amax(1, keepdim=True)
        P = torch.sub(Z, m).exp_()
        s = P.sum(1, keepdim=True)
        P.div_(s)
        lse = s.log_().add_(m)[:, 0]
        zy = Z.gather(1, y.expand(R, n).unsqueeze(1))[:, 0]
        return _row_sum(lse.sub_(zy)) / n, P

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        Z, y = inputs
        P = output[1]
        ctx.mark_non_differentiable(P)
        ctx.set_materialize_grads(False)  # no zero gradient for P: it is (R, C, n)
        ctx.save_for_backward(Z, y, P)
        ctx.save_for_forward(Z, y, P)

    @staticmethod
    def backward(ctx, g: Tensor, _):
        Z, y, P = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        return _SoftmaxGrad.apply(Z, P, y, (g / Z.shape[-1])[:, None, None]), None

    @staticmethod
    def jvp(ctx, dZ: Tensor, _) -> tuple[Tensor, None]:
        Z, y, P = ctx.saved_tensors
        R, n = Z.shape[0], Z.shape[-1]
        dzy = dZ.gather(1, y.expand(R, n).unsqueeze(1))[:, 0]
        return _row_sum((P * dZ).sum(1) - dzy) / n, None

    @staticmethod
    def vmap(info, in_dims, Z, y):
        Z, y = _fold_vmap(info, in_dims, Z, y)
        loss, P = _CrossEntropy.apply(Z, y)
        V = info.batch_size
        return (loss.view(V, -1), P.view(V, -1, *P.shape[1:])), (0, 0)


class _SoftmaxGrad(torch.autograd.Function):
    """The cross-entropy's gradient over logits, ``(P - onehot(y)) * s``, with ``P = softmax(Z)``.

    ``P`` is the softmax :class:`_CrossEntropy` computed (passed in, not recomputed) and
    ``s (R, 1, 1)`` the upstream gradient over n. A Function of its own so that a Hessian's double
    backward through it is the softmax Jacobian, ``P * (U - sum_c P * U)``: a few passes, where
    autograd through exp and a division takes three times as many.
    """

    @staticmethod
    def forward(Z: Tensor, P: Tensor, y: Tensor, s: Tensor) -> Tensor:
        R, n = P.shape[0], P.shape[-1]
        return (P * s).scatter_add_(1, y.expand(R, n).unsqueeze(1), (-s).expand(R, 1, n))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, P, y, s = inputs
        ctx.save_for_backward(P, y, s)
        ctx.save_for_forward(P, y, s)

    @staticmethod
    @once_differentiable
    def backward(ctx, V: Tensor):
        P, y, s = ctx.saved_tensors
        gZ = gs = None
        if ctx.needs_input_grad[0]:
            PU = P * (V * s)
            gZ = PU.sub_(P * PU.sum(1, keepdim=True))
        if ctx.needs_input_grad[3]:
            R, n = P.shape[0], P.shape[-1]
            Vy = V.gather(1, y.expand(R, n).unsqueeze(1))[:, 0]
            gs = _row_sum((P * V).sum(1) - Vy).view(R, 1, 1)
        return gZ, None, None, gs

    @staticmethod
    def jvp(ctx, dZ: Tensor | None, dP, dy, ds: Tensor | None) -> Tensor:
        P, y, s = ctx.saved_tensors
        out = torch.zeros_like(P)
        if dZ is not None:
            out = out + P * (dZ - (P * dZ).sum(1, keepdim=True)) * s
        if ds is not None:
            out = out + _SoftmaxGrad.forward(None, P, y, ds)
        return out

    @staticmethod
    def vmap(info, in_dims, Z, P, y, s):
        Z, P, y, s = _fold_vmap(info, in_dims, Z, P, y, s)
        dZ = _SoftmaxGrad.apply(Z, P, y, s)
        return dZ.view(info.batch_size, -1, *dZ.shape[1:]), 0
