"""Neural landscapes: small networks on fixed data, with full-batch and mini-batch losses.

The point x is the network's parameters flattened in ``nn.Sequential(Linear, Tanh, Linear)``'s
``named_parameters()`` order (first weight, first bias, second weight, second bias). Starts follow
PyTorch's default ``nn.Linear`` initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from a
seeded generator; the box is that same range per coordinate, so ``sample_starts`` draws fresh
default initializations.

The losses are written by hand for a batch of R runs, and a run's numbers never depend on R
(DESIGN, principle 1): they are built from the batch-invariant layers and losses of
:mod:`optzoo.problems.layers` (``vmap`` over ``functional_call``, which these problems used
before, differed by ~1e-16 between R = 1 and R > 1).

``tests/test_neural.py`` checks each problem's loss, gradient and mini-batch loss bit for bit,
alone and inside a batch of random runs, in float64 and float32.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optzoo.errors import ConfigError
from optzoo.problems.base import MiniBatch, Problem
from optzoo.problems.layers import _CrossEntropy, _gemm_layer, _Mix, _Readout, _row_sum

_TS_IN = 4  # teacher-student input dimension
_DIGITS_CLASSES = 10


class _Data:
    """Inputs ``X (n, k)`` and targets ``Y (n,)``, with copies per dtype and device."""

    def __init__(self, X: Tensor, Y: Tensor) -> None:
        self.X, self.Y, self.n = X, Y, X.shape[0]
        self._cache: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}  # pickle the data once, not its copies

    def _like(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        key = (x.dtype, x.device)
        if key not in self._cache:
            X = self.X.to(dtype=x.dtype, device=x.device)
            Y = self.Y.to(device=x.device)
            Y = Y.to(dtype=x.dtype) if Y.is_floating_point() else Y
            self._cache[key] = (X, X.T.contiguous(), Y)
        return self._cache[key]

    def like(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """All rows: inputs transposed, ``(k, n)``, and targets ``(n,)``, in x's dtype."""
        _, XT, Y = self._like(x)
        return XT, Y

    def rows(self, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The rows ``idx (R, B)`` of each run: inputs ``(R, k, B)`` and targets ``(R, B)``."""
        X, _, Y = self._like(x)
        idx = idx.to(x.device)
        rows = X.index_select(0, idx.reshape(-1)).view(*idx.shape, X.shape[1])
        return rows.transpose(1, 2).contiguous(), Y[idx]


def _any_lead(loss: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``loss`` on ``(R, d)`` applied to any leading shape ``(..., d)``."""
    return loss(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1])


def _split(x: Tensor, sizes: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x ``(R, d)`` -> weights ``(R, H, K)``, ``(R, H)``, ``(R, C, H)``, ``(R, C)`` (as views)."""
    K, H, C = sizes
    R = x.shape[0]
    W1, b1, W2, b2 = x.split([H * K, H, C * H, C], dim=-1)
    return W1.reshape(R, H, K), b1, W2.reshape(R, C, H), b2


def _first_layer(W: Tensor, b: Tensor, XT: Tensor) -> Tensor:
    """Pre-activations ``(R, H, n)``: one GEMM on the shared data ``XT (k, n)``, or multiply-adds
    on per-run mini-batch rows ``XT (R, k, B)``, which leave no shared operand for a GEMM."""
    return _gemm_layer(W, b, XT) if XT.ndim == 2 else _Mix.apply(XT, W, b)


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
    """The reference network ``Linear, Tanh, Linear`` whose parameters, flattened, are x."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _start(sizes: list[int], gen: torch.Generator) -> tuple[Tensor, list[tuple[float, float]]]:
    """PyTorch's default initialization of ``_mlp(sizes)`` from ``gen``: x0 and the box."""
    model = _mlp(sizes)
    box = _init_like_torch(model, gen)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), box


# -- teacher-student -------------------------------------------------------------------------------


def _ts_out(x: Tensor, XT: Tensor, width: int) -> Tensor:
    """Student outputs ``(R, n)`` on inputs ``XT``, ``(4, n)`` or per run ``(R, 4, B)``."""
    W1, b1, W2, b2 = _split(x, [_TS_IN, width, 1])
    return _Readout.apply(torch.tanh(_first_layer(W1, b1, XT)), W2[:, 0], b2[:, 0])


def _ts_loss(x: Tensor, data: _Data, width: int) -> Tensor:
    XT, Y = data.like(x)
    r = _ts_out(x, XT, width) - Y
    return _row_sum(r * r) / data.n


def _ts_batch_loss(x: Tensor, idx: Tensor, data: _Data, width: int) -> Tensor:
    XT, Y = data.rows(x, idx)
    r = _ts_out(x, XT, width) - Y
    return _row_sum(r * r) / idx.shape[-1]


def teacher_student(
    width: int = 8, teacher_width: int = 4, n_data: int = 256, batch_size: int = 32, seed: int = 0
) -> Problem:
    """Regression of a student MLP onto a fixed teacher MLP: f(theta) = mean (s_theta(x) - t(x))^2.

    Both are 4 -> hidden -> 1 with tanh. Inputs x ~ N(0, I_4), n = ``n_data`` of them; the
    teacher's first layer is N(0, 1) (so its units work in tanh's nonlinear range), its output
    layer N(0, 1/teacher_width), biases zero; all from ``torch.Generator().manual_seed(seed)``.
    When width >= teacher_width the teacher is realizable, f* = 0, and the teacher padded with
    zero units is a listed minimizer (f = 0 there exactly); otherwise f* is unknown (None). Solved
    at f <= 1e-3. Mini-batches of ``batch_size`` rows. Reference: Saad & Solla (1995), "On-line
    learning in soft committee machines", Phys. Rev. E 52(4); Gardner & Derrida (1989).
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
    zeros = torch.zeros(teacher_width + 1, dtype=f64)
    teacher = torch.cat([W1.reshape(-1), zeros[:-1], W2.reshape(-1), zeros[-1:]])
    # The targets come from the student's own code at the teacher's weights: zero-padded units
    # add exact zeros (and the GEMM gives a row the same numbers beside any other rows), so f is
    # exactly 0 at the listed minimizer.
    Y = _ts_out(teacher[None], X.T.contiguous(), teacher_width)[0]
    data = _Data(X, Y)

    x0, box = _start([_TS_IN, width, 1], gen)
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
    return Problem(
        fn=functools.partial(_any_lead, functools.partial(_ts_loss, data=data, width=width)),
        x0=x0,
        minibatch=MiniBatch(
            fn=functools.partial(_ts_batch_loss, data=data, width=width),
            n_data=n_data,
            batch_size=batch_size,
        ),
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


# -- digits ----------------------------------------------------------------------------------------


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


def _digits_loss(x: Tensor, XT: Tensor, y: Tensor, hidden: int) -> Tensor:
    """Mean cross-entropy per run on inputs ``XT``, ``(64, n)`` or per run ``(R, 64, B)``."""
    W1, b1, W2, b2 = _split(x, [XT.shape[-2], hidden, _DIGITS_CLASSES])
    logits = _Mix.apply(torch.tanh(_first_layer(W1, b1, XT)), W2, b2)  # (R, 10, n)
    return _CrossEntropy.apply(logits, y.reshape(-1, logits.shape[-1]))[0]


def _digits_full_loss(x: Tensor, data: _Data, hidden: int) -> Tensor:
    return _digits_loss(x, *data.like(x), hidden)


def _digits_batch_loss(x: Tensor, idx: Tensor, data: _Data, hidden: int) -> Tensor:
    return _digits_loss(x, *data.rows(x, idx), hidden)


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
    n, k = X.shape
    if not 1 <= batch_size <= n:
        raise ConfigError(
            f"problem 'digits_mlp': param batch_size must be in [1, {n}], got {batch_size}"
        )
    data = _Data(X, y)
    x0, box = _start([k, hidden, _DIGITS_CLASSES], torch.Generator().manual_seed(seed))
    return Problem(
        fn=functools.partial(
            _any_lead, functools.partial(_digits_full_loss, data=data, hidden=hidden)
        ),
        x0=x0,
        minibatch=MiniBatch(
            fn=functools.partial(_digits_batch_loss, data=data, hidden=hidden),
            n_data=n,
            batch_size=batch_size,
        ),
        name="digits_mlp",
        category="neural",
        bounds=box,
        f_star=None,
        description=(
            f"f(theta) = mean cross-entropy of a tanh MLP {k}-{hidden}-{_DIGITS_CLASSES} on "
            f"sklearn digits (n = {n}, standardized); f* unknown"
        ),
        params={"hidden": hidden, "batch_size": batch_size, "seed": seed},
    )
