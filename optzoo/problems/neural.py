"""Neural landscapes: small networks on fixed data, with full-batch and mini-batch losses.

Both problems are built by :func:`optzoo.problems.custom.from_module`: the network's parameters,
flattened, are the point x, and the loss runs through ``torch.func.functional_call`` vmapped over
runs. Starts follow PyTorch's default ``nn.Linear`` initialization, U(-1/sqrt(fan_in),
1/sqrt(fan_in)), drawn from a seeded generator; the box is that same range per coordinate, so
``sample_starts`` draws fresh default initializations.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optzoo.errors import ConfigError
from optzoo.problems.base import Problem
from optzoo.problems.custom import from_module

_TS_IN = 4  # teacher-student input dimension


def _init_like_torch(model: nn.Module, gen: torch.Generator) -> list[tuple[float, float]]:
    """Set every Linear to U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from ``gen``; return the box."""
    box = []
    with torch.no_grad():
        for p_name, p in model.named_parameters():
            layer = model.get_submodule(p_name.rsplit(".", 1)[0])
            a = 1.0 / math.sqrt(layer.in_features)
            p.copy_((2.0 * torch.rand(p.shape, generator=gen, dtype=torch.float64) - 1.0) * a)
            box += [(-a, a)] * p.numel()
    return box


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def _cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels)


def teacher_student(
    width: int = 8, teacher_width: int = 4, n_data: int = 256, batch_size: int = 32, seed: int = 0
) -> Problem:
    """Regression of a student MLP onto a fixed teacher MLP: f(theta) = mean (s_theta(x) - t(x))^2.

    Both are 4 -> hidden -> 1 with tanh. Inputs x ~ N(0, I_4), n = ``n_data`` of them; the
    teacher's first layer is N(0, 1) (so its units work in tanh's nonlinear range), its output
    layer N(0, 1/teacher_width), biases zero; all from ``torch.Generator().manual_seed(seed)``.
    When width >= teacher_width the teacher is realizable, f* = 0, and the teacher padded with
    zero units is a listed minimizer; otherwise f* is unknown (None). Solved at f <= 1e-3.
    Mini-batches of ``batch_size`` rows. Reference: Saad & Solla (1995), "On-line learning in
    soft committee machines", Phys. Rev. E 52(4); Gardner & Derrida (1989).
    """
    for param, value, lo, hi in (
        ("width", width, 1, 256),
        ("teacher_width", teacher_width, 1, 256),
        ("n_data", n_data, 1, 1_000_000),
        ("seed", seed, 0, 2**62),
    ):
        if not lo <= value <= hi:
            raise ConfigError(
                f"problem 'teacher_student': param {param} must be in [{lo}, {hi}], got {value}"
            )
    if not 1 <= batch_size <= n_data:
        raise ConfigError(
            f"problem 'teacher_student': param batch_size must be in [1, n_data={n_data}], "
            f"got {batch_size}"
        )
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    X = torch.randn(n_data, _TS_IN, generator=gen, dtype=f64)
    W1 = torch.randn(teacher_width, _TS_IN, generator=gen, dtype=f64)
    W2 = torch.randn(1, teacher_width, generator=gen, dtype=f64) / math.sqrt(teacher_width)
    Y = torch.tanh(X @ W1.T) @ W2.T

    student = _mlp([_TS_IN, width, 1])
    box = _init_like_torch(student, gen)
    realizable = width >= teacher_width
    minimizers = []
    if realizable:
        pad = width - teacher_width
        minimizers.append(
            torch.cat(
                [
                    F.pad(W1, (0, 0, 0, pad)).reshape(-1),  # first weight (width, 4)
                    torch.zeros(width, dtype=f64),  # first bias
                    F.pad(W2, (0, pad)).reshape(-1),  # second weight (1, width)
                    torch.zeros(1, dtype=f64),  # second bias
                ]
            )
        )
    return from_module(
        student,
        _mse,
        (X, Y),
        batch_size=batch_size,
        name="teacher_student",
        category="neural",
        bounds=box,
        f_star=0.0 if realizable else None,
        minimizers=minimizers,
        target=1e-3,
        description=(
            f"f(theta) = mean_i (s_theta(x_i) - t(x_i))^2, tanh MLPs 4-{width}-1 (student) and "
            f"4-{teacher_width}-1 (teacher), n = {n_data}; "
            + ("f* = 0 (realizable)" if realizable else "f* unknown (student narrower)")
        ),
        params={
            "width": width,
            "teacher_width": teacher_width,
            "n_data": n_data,
            "batch_size": batch_size,
            "seed": seed,
        },
    )


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's bundled 8x8 digits, features standardized (constant pixels left at 0)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = torch.as_tensor(data.data, dtype=torch.float64)
    y = torch.as_tensor(data.target, dtype=torch.int64)
    std = X.std(dim=0)
    X = (X - X.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    return X, y


def digits_mlp(hidden: int = 8, batch_size: int = 64, seed: int = 0) -> Problem:
    """A one-hidden-layer tanh MLP classifying scikit-learn's digits: mean cross-entropy.

    f(theta) = -mean_i log softmax(W2 tanh(W1 x_i + b1) + b2)[y_i] over the 1797 8x8 images
    bundled with scikit-learn (no download), 64 standardized features, 10 classes; layers
    64-``hidden``-10 (610 parameters by default). f* is not known (None): the infimum may be 0,
    reached only as weights grow without bound. Mini-batches of ``batch_size`` rows. Reference:
    the UCI optical recognition of handwritten digits data (Alpaydin & Kaynak 1998), as
    ``sklearn.datasets.load_digits``.
    """
    if not 1 <= hidden <= 1024:
        raise ConfigError(f"problem 'digits_mlp': param hidden must be in [1, 1024], got {hidden}")
    if seed < 0:
        raise ConfigError(f"problem 'digits_mlp': param seed must be >= 0, got {seed}")
    X, y = _digits()
    if not 1 <= batch_size <= X.shape[0]:
        raise ConfigError(
            f"problem 'digits_mlp': param batch_size must be in [1, {X.shape[0]}], got {batch_size}"
        )
    model = _mlp([X.shape[1], hidden, 10])
    box = _init_like_torch(model, torch.Generator().manual_seed(seed))
    return from_module(
        model,
        _cross_entropy,
        (X, y),
        batch_size=batch_size,
        name="digits_mlp",
        category="neural",
        bounds=box,
        f_star=None,
        description=(
            f"f(theta) = mean cross-entropy of a tanh MLP 64-{hidden}-10 on sklearn digits "
            f"(n = {X.shape[0]}, standardized); f* unknown"
        ),
        params={"hidden": hidden, "batch_size": batch_size, "seed": seed},
    )
