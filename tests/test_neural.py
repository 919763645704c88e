"""The neural problems: exact batch invariance, agreement with nn.Module, minimizers, derivatives."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import optzoo.problems as P
from optzoo.harness import padded_size
from optzoo.problems import neural
from optzoo.problems.oracle import Oracle, hessian

F64 = torch.float64
NEURAL = P.names("neural")
BIG = 515  # runs in the batch that a lone run is compared against: not a multiple of 32 or 64


@functools.cache
def problem(name: str, **params) -> P.Problem:
    return P.get(name, **params)


def value_and_grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and gradient per run, as the oracle computes them (autograd of the summed loss)."""
    x = x.detach().requires_grad_(True)
    f = fn(x)
    (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g


def batch_with(p: P.Problem, run: torch.Tensor, R: int, rows, seed: int = 0) -> torch.Tensor:
    """R random starts (spread wider than the box) with ``run`` at ``rows``."""
    lo, hi = p.bounds
    x = p.sample_starts(R, seed=seed)
    x = 0.5 * (lo + hi) + 3.0 * (x - 0.5 * (lo + hi))
    x[list(rows)] = run
    return x


def padded(n: int, dtype) -> int:
    """``n`` rounded up as the harness pads a batch, for the widest vectors torch dispatches to
    (AVX-512: four 64-byte vectors), so AVX-512's layout is exercised on any machine."""
    widest = 4 * 64 // torch.empty(0, dtype=dtype).element_size()
    m = max(widest, padded_size(1, dtype, torch.device("cpu")))
    return -(-n // m) * m


def pad_rows(t: torch.Tensor, R: int) -> torch.Tensor:
    """``t`` with copies of its first row appended up to R rows (the harness's frozen padding)."""
    return torch.cat([t, t[:1].expand(R - t.shape[0], *t.shape[1:])])


def assert_same_alone_and_in_batch(
    p: P.Problem, run: torch.Tensor, dtype, B: int, R: int = BIG
) -> None:
    """Loss, gradient, mini-batch loss and its gradient of ``run``: alone, and at the first, a
    middle and the last real row of a batch of R random runs, each padded as the harness pads.

    R is not a multiple of 32 or 64, so without the padding the last row would fall on torch's
    scalar tail (where transcendental kernels round differently) with AVX2 or AVX-512 widths."""
    gen = torch.Generator().manual_seed(5)
    idx = torch.randint(0, p.minibatch.n_data, (R, B), generator=gen)
    rows = (0, R // 2 + 1, R - 1)
    idx[list(rows)] = idx[0].clone()
    x = batch_with(p, run, R, rows).to(dtype)
    alone_x, alone_idx = pad_rows(x[:1], padded(1, dtype)), pad_rows(idx[:1], padded(1, dtype))
    x, idx = pad_rows(x, padded(R, dtype)), pad_rows(idx, padded(R, dtype))
    alone = [
        *value_and_grad(p.fn, alone_x),
        *value_and_grad(lambda z: p.minibatch.fn(z, alone_idx), alone_x),
    ]
    inside = [
        *value_and_grad(p.fn, x),
        *value_and_grad(lambda z: p.minibatch.fn(z, idx), x),
    ]
    for what, a, b in zip(("loss", "grad", "batch loss", "batch grad"), alone, inside, strict=True):
        for row in rows:
            assert torch.equal(a[0], b[row]), (
                f"{p.name} {dtype} {what}: run alone vs at row {row} of {R} differ by "
                f"{(a[0] - b[row]).abs().max().item():.3g}"
            )


# -- batch invariance ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", NEURAL)
def test_batch_invariance_exact(name, dtype):
    p = problem(name)
    assert_same_alone_and_in_batch(
        p, p.sample_starts(1, seed=11)[0], dtype, B=p.minibatch.batch_size
    )


@pytest.mark.parametrize(
    "name,params",
    [
        ("teacher_student", {"width": 3, "teacher_width": 2}),  # widths not a multiple of 8
        ("digits_mlp", {"hidden": 3}),  # GEMM blocks padded with zero rows
        ("digits_mlp", {"hidden": 13}),
    ],
)
def test_batch_invariance_other_widths(name, params):
    p = problem(name, **params)
    assert_same_alone_and_in_batch(p, p.sample_starts(1, seed=12)[0], F64, B=7, R=200)


def test_one_long_row_is_summed_like_many():
    # torch.sum splits a lone row of >= 32768 values across threads; the losses must not.
    for width in (8, 1):
        p = problem("teacher_student", width=width, teacher_width=1, n_data=40_000)
        x = batch_with(p, p.x0, 3, [1])
        alone, inside = value_and_grad(p.fn, p.x0[None]), value_and_grad(p.fn, x)
        assert torch.equal(alone[0][0], inside[0][1]) and torch.equal(alone[1][0], inside[1][1])
    v = torch.randn(1, 100_000, dtype=F64, generator=torch.Generator().manual_seed(0))
    many = torch.cat([v, torch.randn(3, 100_000, dtype=F64)])
    assert torch.equal(neural._row_sum(v)[0], neural._row_sum(many)[0])


def test_hessians_alone_and_in_batch():
    p = problem("teacher_student")
    run = p.sample_starts(1, seed=13)[0]
    alone = hessian(p.fn, pad_rows(run[None], padded(1, F64)))[0]
    rows = (0, 11, 23)
    H = hessian(p.fn, pad_rows(batch_with(p, run, 24, rows), padded(24, F64)))
    for row in rows:
        assert torch.equal(H[row], alone)


def test_oracle_minibatch_runs_alone_and_in_batch():
    p = problem("digits_mlp")
    R, one = padded(BIG, F64), padded(1, F64)
    x = pad_rows(batch_with(p, p.x0, BIG, [100]), R)
    seeds = torch.arange(R)
    _, g = Oracle(p, R, seeds=seeds, batch_size=32).value_and_grad(x)
    alone = pad_rows(x[100:101], one)
    _, g1 = Oracle(p, one, seeds=pad_rows(seeds[100:101], one), batch_size=32).value_and_grad(alone)
    assert torch.equal(g[100], g1[0])


# -- the same loss as the nn.Module ----------------------------------------------------------------


def reference_data(name: str, p: P.Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """The data rebuilt from the docstrings, the targets by an nn.Module teacher."""
    if name == "digits_mlp":
        return neural._digits()
    gen = torch.Generator().manual_seed(p.params["seed"])
    tw = p.params["teacher_width"]
    X = torch.randn(p.params["n_data"], 4, generator=gen, dtype=F64)
    W1 = torch.randn(tw, 4, generator=gen, dtype=F64)
    W2 = torch.randn(1, tw, generator=gen, dtype=F64) / tw**0.5
    teacher = neural._mlp([4, tw, 1])
    params = [W1, torch.zeros(tw, dtype=F64), W2, torch.zeros(1, dtype=F64)]
    nn.utils.vector_to_parameters(torch.cat([q.reshape(-1) for q in params]), teacher.parameters())
    with torch.no_grad():
        return X, teacher(X)[:, 0]


def module(name: str, p: P.Problem) -> tuple[nn.Module, object]:
    if name == "teacher_student":
        return neural._mlp([4, p.params["width"], 1]), lambda out, Y: nn.MSELoss()(out[:, 0], Y)
    return neural._mlp([64, p.params["hidden"], 10]), nn.CrossEntropyLoss()


def module_loss(name: str, p: P.Problem, x: torch.Tensor, rows: torch.Tensor | None = None):
    """The loss by nn.Sequential(Linear, Tanh, Linear) with the weights x, on all rows or some."""
    X, Y = reference_data(name, p)
    if rows is not None:
        X, Y = X[rows], Y[rows]
    model, loss = module(name, p)
    nn.utils.vector_to_parameters(x, model.parameters())
    with torch.no_grad():
        return loss(model(X), Y)


def module_fn(name: str, p: P.Problem, rows: torch.Tensor | None = None):
    """z -> the module's loss with the weights z, through torch.func.functional_call."""
    X, Y = reference_data(name, p)
    if rows is not None:
        X, Y = X[rows], Y[rows]
    model, loss = module(name, p)
    names = [k for k, _ in model.named_parameters()]
    shapes = [q.shape for q in model.parameters()]

    def f(z):
        parts = torch.split(z, [s.numel() for s in shapes])
        params = {k: t.view(s) for k, t, s in zip(names, parts, shapes, strict=True)}
        return loss(torch.func.functional_call(model, params, (X,)), Y)

    return f


@pytest.mark.parametrize("name", NEURAL)
def test_loss_and_gradient_equal_the_modules(name):
    p = problem(name)
    x = torch.cat([p.x0[None], p.sample_starts(3, seed=4)])
    idx = torch.randint(0, p.minibatch.n_data, (4, 9), generator=torch.Generator().manual_seed(6))
    ours = [value_and_grad(p.fn, x), value_and_grad(lambda z: p.minibatch.fn(z, idx), x)]
    for r in range(4):
        # nn.Sequential with the weights copied in by vector_to_parameters ...
        assert abs(float(ours[0][0][r]) - float(module_loss(name, p, x[r]))) < 1e-12
        assert abs(float(ours[1][0][r]) - float(module_loss(name, p, x[r], idx[r]))) < 1e-12
        # ... and its gradient, through functional_call.
        for (_, g), rows in zip(ours, (None, idx[r]), strict=True):
            z = x[r].clone().requires_grad_(True)
            (ref,) = torch.autograd.grad(module_fn(name, p, rows)(z), z)
            torch.testing.assert_close(g[r], ref, rtol=1e-10, atol=1e-13)


def test_x0_and_box_are_torch_default_initialization():
    # x0 is nn.Linear's default init drawn from the seeded generator, flattened in
    # named_parameters() order: first weight (8, 4) within +-1/2, second weight within +-1/sqrt(8).
    p = problem("teacher_student")
    assert p.dim == 8 * 4 + 8 + 8 + 1
    lo, hi = p.bounds
    torch.testing.assert_close(hi[:40], torch.full((40,), 0.5, dtype=F64))
    torch.testing.assert_close(hi[40:], torch.full((9,), 8**-0.5, dtype=F64))
    assert torch.equal(lo, -hi)
    assert problem("digits_mlp").dim == 64 * 8 + 8 + 8 * 10 + 10


# -- minimizers and derivatives --------------------------------------------------------------------


def test_teacher_is_an_exact_minimizer():
    for width, teacher_width in ((8, 4), (5, 5), (6, 3), (12, 4), (9, 9), (40, 20)):
        p = problem("teacher_student", width=width, teacher_width=teacher_width)
        m = torch.tensor(p.minimizers, dtype=F64)
        f, g = value_and_grad(p.fn, m)
        assert f.tolist() == [0.0] and g.abs().max() == 0.0, f"{width=} {teacher_width=}: {f=}"


@pytest.mark.parametrize(
    "name,params",
    [("teacher_student", {}), ("teacher_student", {"width": 3}), ("digits_mlp", {"hidden": 3})],
)
def test_gradients_match_central_differences(name, params):
    p = problem(name, **params)
    x = torch.cat([p.x0[None], p.sample_starts(2, seed=8)])
    gen = torch.Generator().manual_seed(9)
    idx = torch.randint(0, p.minibatch.n_data, (3, 16), generator=gen)
    v = torch.randn(3, p.dim, generator=gen, dtype=F64)
    v = v / v.norm(dim=-1, keepdim=True)
    h = 1e-6
    for fn in (p.fn, lambda z: p.minibatch.fn(z, idx)):
        _, g = value_and_grad(fn, x)
        fd = (fn(x + h * v) - fn(x - h * v)) / (2 * h)
        torch.testing.assert_close((g * v).sum(-1), fd, rtol=1e-6, atol=1e-8)


def test_hessian_matches_the_modules():
    p = problem("teacher_student", width=3, teacher_width=2)
    x = p.sample_starts(2, seed=10)
    H = hessian(p.fn, x)
    for r in range(2):
        ref = torch.autograd.functional.hessian(module_fn("teacher_student", p), x[r])
        torch.testing.assert_close(H[r], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NEURAL)
def test_gradient_with_and_without_create_graph_agree(name):
    # Hessians differentiate the gradient built with create_graph=True; it must be the very
    # gradient value_and_grad returns (Newton's g and H from the same function).
    p = problem(name)
    x = p.sample_starts(3, seed=14).requires_grad_(True)
    (g,) = torch.autograd.grad(p.fn(x).sum(), x)
    (g2,) = torch.autograd.grad(p.fn(x).sum(), x, create_graph=True)
    assert torch.equal(g, g2.detach())
