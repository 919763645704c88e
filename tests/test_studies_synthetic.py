"""The studies' synthetic landscapes against their closed forms."""

from __future__ import annotations

import torch

from optzoo.analysis import classify
from optzoo.problems.synthetic import quartic_saddle, random_fourier


def test_quartic_saddle_spectrum_and_minima():
    p = quartic_saddle(dim=7, k=3)
    c = classify(p, torch.zeros(7, dtype=torch.float64))
    assert c.kind == "saddle" and c.n_neg == 3
    assert c.eigenvalues.tolist() == [-1.0] * 3 + [1.0] * 4
    m = torch.tensor(p.minimizers[0], dtype=torch.float64)
    assert classify(p, m).kind == "minimum" and float(p.fn(m[None])[0]) == p.f_star == -0.75


def test_random_fourier_has_unit_variance_and_is_seeded():
    # E f(x)^2 = sum_j E a_j^2 E cos^2(.) = M (2 / M) (1 / 2) = 1 over the random draw.
    x = torch.rand(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    vals = torch.stack([random_fourier(dim=3, seed=s).fn(x) for s in range(200)])
    assert 0.8 < float(vals.pow(2).mean()) < 1.2
    assert torch.equal(random_fourier(dim=3, seed=4).fn(x), random_fourier(dim=3, seed=4).fn(x))
