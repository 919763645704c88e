"""The step cosine against closed forms: gradient descent on quadratics, straight runs, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optzoo import problems
from optzoo.oscillation import StepCosine, step_cosine


def gd_quadratic(h: torch.Tensor, eta: torch.Tensor, x0: torch.Tensor, steps: int) -> StepCosine:
    """Gradient descent x <- x - eta H x with H = diag(h), runs ``(R, d)``, fed to a meter."""
    meter = StepCosine(*x0.shape)
    x = x0.clone()
    active = torch.ones(x0.shape[0], dtype=torch.bool)
    for _ in range(steps):
        x_new = x - eta[:, None] * h * x
        meter.update(x_new - x, active)
        x = x_new
    return meter


def test_1d_quadratic_closed_form_sign_of_one_minus_eta_L():
    # s_t = -eta L (1 - eta L)^t x0: successive steps share a sign for eta < 1/L (cos +1), and
    # flip every step for 1/L < eta < 2/L (cos -1), also past 2/L where the run diverges.
    L = 4.0
    eta = torch.tensor([0.1, 0.2, 0.26, 0.3, 0.45, 0.49, 0.55], dtype=torch.float64)
    cos = gd_quadratic(torch.tensor([L]), eta, torch.full((7, 1), 1.5), 40).result()
    expect = torch.sign(1 - eta * L)
    torch.testing.assert_close(cos, expect, rtol=0, atol=1e-15)
    assert (cos[(eta > 1 / L) & (eta < 2 / L)] == -1).all()


def test_1d_quadratic_eta_one_over_L_lands_then_stops_moving():
    # eta = 1/L lands on the minimum in one step; every later step is zero, so no pair counts.
    cos = gd_quadratic(torch.tensor([2.0]), torch.tensor([0.5]), torch.ones(1, 1), 10).result()
    assert math.isnan(float(cos[0]))


def test_2d_quadratic_mean_cosine_closed_form():
    # Component i of s_t is a_i r_i^t with a_i = -eta h_i x0_i and r_i = 1 - eta h_i, so
    # cos(s_(t-1), s_t) = sum a^2 r^(2t-1) / sqrt(sum a^2 r^(2t-2) * sum a^2 r^(2t)).
    h = torch.tensor([10.0, 1.0], dtype=torch.float64)
    eta = torch.tensor([0.05, 0.15, 0.19], dtype=torch.float64)
    x0 = torch.tensor([[1.0, 1.0], [0.3, -2.0], [-1.0, 0.5]], dtype=torch.float64)
    T = 30
    got = gd_quadratic(h, eta, x0, T).result().numpy()
    hn, en, xn = h.numpy(), eta.numpy(), x0.numpy()
    for k in range(3):
        a = -en[k] * hn * xn[k]
        r = 1 - en[k] * hn
        cs = [
            (a * a * r ** (2 * t - 1)).sum()
            / math.sqrt((a * a * r ** (2 * t - 2)).sum() * (a * a * r ** (2 * t)).sum())
            for t in range(1, T)
        ]
        assert got[k] == pytest.approx(np.mean(cs), rel=1e-12, abs=1e-14)
    # The stiff component flips sign for the last two (eta h_1 > 1); it dominates the steps, a
    # zigzag, only where it also decays slower than the flat one (|1 - 10 eta| > 1 - eta).
    assert got[0] > 0.99 and got[1] > 0.9 and got[2] < -0.9


def test_straight_run_is_plus_one_whatever_its_step_sizes():
    R, d = 5, 3
    u = torch.randn(R, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    meter = StepCosine(R, d)
    active = torch.ones(R, dtype=torch.bool)
    for t in range(20):
        size = torch.logspace(-8, 2, R, dtype=torch.float64) * (1 + t) ** -2  # crawling or not
        meter.update(size[:, None] * u, active)
    torch.testing.assert_close(meter.result(), torch.ones(R, dtype=torch.float64))


def test_fewer_than_two_steps_is_nan_and_zero_steps_are_left_out():
    meter = StepCosine(3, 2)
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    meter.update(s, torch.tensor([True, True, True]))
    assert meter.result().isnan().all()
    # Run 1 takes a zero step: neither of the pairs it belongs to counts.
    meter.update(torch.tensor([[-1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), torch.ones(3, dtype=bool))
    meter.update(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), torch.ones(3, dtype=bool))
    assert meter.result()[0] == -1.0
    assert math.isnan(float(meter.result()[1]))
    assert meter.result()[2] == 0.5  # cos 0, then cos 1


def test_masked_runs_stop_accumulating():
    gen = torch.Generator().manual_seed(1)
    steps = torch.randn(12, 4, 3, generator=gen, dtype=torch.float64)
    full, cut = StepCosine(4, 3), StepCosine(4, 3)
    stop_at = torch.tensor([12, 5, 1, 0])
    for t in range(12):
        full.update(steps[t], torch.ones(4, dtype=torch.bool))
        cut.update(steps[t], t < stop_at)
    for r in range(4):
        alone = StepCosine(1, 3)
        for t in range(int(stop_at[r])):
            alone.update(steps[t, r : r + 1], torch.ones(1, dtype=torch.bool))
        assert torch.equal(cut.result()[r : r + 1].nan_to_num(9.0), alone.result().nan_to_num(9.0))
    assert torch.equal(cut.result()[0], full.result()[0])
    assert not torch.equal(cut.result()[1], full.result()[1])
    assert cut.result()[2:].isnan().all()  # one step or none: no pair


def test_batch_invariance_alone_and_in_a_padded_batch_of_1000():
    # As the harness pads a batch (copies of its first run), a run's value is the same alone
    # (padded to 16 rows) and at any row of a batch of 1,000 (padded to 1,008).
    gen = torch.Generator().manual_seed(2)
    T, d = 50, 7
    steps = torch.randn(T, 1008, d, generator=gen, dtype=torch.float64)
    steps[:, 1000:] = steps[:, :1]
    live = torch.rand(T, 1008, generator=gen) < 0.9
    live[:, 1000:] = False
    big = StepCosine(1008, d)
    for t in range(T):
        big.update(steps[t], live[t])
    for r in (0, 1, 517, 999):
        small = StepCosine(16, d)
        for t in range(T):
            pad = steps[t, r : r + 1].expand(16, d).clone()
            small.update(pad, live[t, r].reshape(1).expand(16) & (torch.arange(16) == 0))
        assert torch.equal(small.result()[0], big.result()[r])


def test_agrees_with_the_ravine_studies_meter():
    from optzoo import optimizers
    from optzoo.studies.rollout import rollout
    from optzoo.studies.zigzag import ZigzagMeter, rosenbrock_top

    p = problems.get("rosenbrock")
    x0 = p.sample_starts(16, seed=4)
    lr = torch.logspace(-4, -2.5, 16, dtype=torch.float64)
    zig = ZigzagMeter(x0, torch.full((16,), -1.0), 200, rosenbrock_top)
    ours = StepCosine(16, 2)

    def watch(st):
        zig(st)
        ours.update(st.x_new - st.x, st.moving)

    rollout(p, optimizers.get_class("sgd")(lr=lr), x0, 200, watch=watch)
    mine = ours.result()
    ok = ~mine.isnan()
    assert ok.any()
    torch.testing.assert_close(mine[ok], zig.results(200)["mean_cos"][ok], rtol=0, atol=0)


def test_step_cosine_returns_zero_where_undefined():
    cos, defined = step_cosine(
        torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [2.0, 2.0]])
    )
    assert defined.tolist() == [False, True]
    assert cos[0] == 0.0 and cos[1] == pytest.approx(1.0)


def test_given_norms_change_nothing():
    gen = torch.Generator().manual_seed(5)
    steps = torch.randn(20, 8, 3, generator=gen, dtype=torch.float64)
    steps[5, 2] = 0.0
    plain, given = StepCosine(8, 3), StepCosine(8, 3)
    for t in range(20):
        active = torch.arange(8) != t % 8
        plain.update(steps[t], active)
        given.update(steps[t], active, torch.linalg.vector_norm(steps[t], dim=-1))
    assert torch.equal(plain.result(), given.result())


def test_two_long_rows_round_as_a_sum_started_at_zero():
    # The cosine of 2-D steps against Python's own float arithmetic: sum() adds the two products
    # to an accumulator that starts at 0 (so -0 + -0 gives +0), then one division, as defined.
    vals = [0.0, -0.0, 5e-324, -1e-300, 1.0, -1.0, 0.1, -0.7, 3.3, 1e154, -1e308, math.inf]
    pairs = torch.tensor([(a, b) for a in vals for b in vals], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    rand = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    rand *= 10.0 ** torch.randint(-200, 200, (4000, 1), generator=gen)
    s = torch.cat([pairs.repeat(len(pairs), 1), rand])
    prev = torch.cat([pairs.repeat_interleave(len(pairs), 0), rand.flip(0)])
    norm = torch.rand(len(s), generator=gen, dtype=torch.float64) + 0.5
    prev_norm = torch.rand(len(s), generator=gen, dtype=torch.float64) + 0.5
    cos, defined = step_cosine(s, prev, norm, prev_norm)
    assert bool(defined.all())
    for i in range(len(s)):
        a, b = s[i].tolist(), prev[i].tolist()
        want = sum([a[0] * b[0], a[1] * b[1]]) / max(norm[i].item() * prev_norm[i].item(), 1e-300)
        got = cos[i].item()
        assert (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1, got) == math.copysign(1, want)
        ), (i, a, b, got, want)
