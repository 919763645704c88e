"""Custom losses: a module attribute, an arithmetic expression, or an ``nn.Module`` with data.

A plain callable needs no route of its own: ``Problem(fn=..., x0=..., batched=False)`` vmaps a
one-point loss. Every route ends in a :class:`Problem`, so a custom loss is validated the same
way as a library one (real scalar per point, finite at x0, differentiable) and a mistake is one
:class:`ConfigError` line.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import math
import os
import re
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from optzoo.errors import ConfigError
from optzoo.problems.base import MiniBatch, Problem

# -- load("package.module:attr") ----------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + " ".join(str(e).split())


def _is_factory(obj: Callable) -> bool:
    """A callable that needs no argument: called to make the Problem."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not inspect.Parameter.empty
        or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in sig.parameters.values()
    )


def _with_fields(problem: Problem, fields: dict, spec: str) -> Problem:
    if not fields:
        return problem
    if "x0" in fields and len(torch.as_tensor(fields["x0"]).reshape(-1)) != problem.dim:
        n = len(torch.as_tensor(fields["x0"]).reshape(-1))
        raise ConfigError(
            f"{spec!r} is a {problem.dim}-D problem; x0 has {n} values, it needs {problem.dim}"
        )
    # Bounds as one (lo, hi) row per coordinate: the stored (2, d) form reads the other way
    # round when d = 2, and would be refused.
    fields = {"bounds": problem.bounds.T, **fields}
    try:
        return dataclasses.replace(problem, **fields)
    except TypeError as e:  # not a Problem field
        raise ConfigError(f"{spec!r}: {e}") from None


def _import_user_module(name: str, spec: str) -> Any:
    """The user's module, by file path or by module name.

    A file is imported under a private module name, and the current directory is only ever
    appended to ``sys.path`` (where a plain ``import`` misses the module), never put first: a
    folder named ``optzoo/`` beside the user's file (a clone, say) cannot shadow the package.
    """
    try:
        if name.endswith(".py") or "/" in name or os.sep in name:
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{spec!r}: no such file {name!r}")
            key = f"_optzoo_user_{path.stem}_{zlib.crc32(str(path).encode()):08x}"
            if key not in sys.modules:
                found = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(found)
                sys.modules[key] = module  # so that its functions pickle into worker processes
                try:
                    found.loader.exec_module(module)
                except BaseException:
                    del sys.modules[key]
                    raise
            return sys.modules[key]
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            here = os.getcwd()
            if e.name != name.split(".")[0] or here in sys.path:
                raise
            sys.path.append(here)
            return importlib.import_module(name)
    except ConfigError:
        raise
    except (Exception, SystemExit) as e:  # the user's module: any failure is theirs, in one line
        raise ConfigError(f"cannot import {name!r} for {spec!r}: {_one_line(e)}") from None


def load(spec: str, x0: Sequence[float] | Tensor | None = None, **options: Any) -> Problem:
    """Load a problem from ``"package.module:attr"`` or ``"path/to/file.py:attr"``.

    ``attr`` (which may be dotted) is a :class:`Problem`, a zero-argument factory returning one,
    or a loss callable (batched, ``(..., d) -> (...)``, unless ``batched=False`` is passed),
    which needs ``x0``.
    ``x0`` and ``options`` (any :class:`Problem` field: bounds, f_star, name, batched, ...) build
    the loss's Problem, or replace fields of a loaded one. Import failures, a missing attribute
    or a factory that fails raise :class:`ConfigError` in one line.
    """
    form = "'package.module:attr' or 'path/to/file.py:attr'"
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"a problem spec must look like {form}, got {spec!r}")
    module_name, _, attr = (part.strip() for part in spec.rpartition(":"))
    if not module_name or not attr:
        raise ConfigError(f"a problem spec must look like {form}, got {spec!r}")
    module = _import_user_module(module_name, spec)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)

    fields = dict(options)
    if x0 is not None:
        fields["x0"] = x0
    if isinstance(obj, Problem):
        return _with_fields(obj, fields, spec)
    if not callable(obj):
        raise ConfigError(
            f"{spec!r} is a {type(obj).__name__}; expected a Problem, a factory or a loss callable"
        )
    if _is_factory(obj):
        try:
            made = obj()
        except ConfigError as e:
            raise ConfigError(f"{spec!r}: {e}") from None
        except (Exception, SystemExit) as e:  # sys.exit() in a factory is a failure too
            raise ConfigError(f"calling {spec!r} failed: {_one_line(e)}") from None
        if not isinstance(made, Problem):
            raise ConfigError(
                f"{spec!r} is a factory but returned a {type(made).__name__}, expected a Problem"
            )
        return _with_fields(made, fields, spec)
    if x0 is None:
        raise ConfigError(
            f"{spec!r} is a loss function: give its start, load({spec!r}, x0=[...]), "
            "or export a Problem"
        )
    fields.setdefault("name", attr)
    try:
        return Problem(fn=obj, **fields)
    except TypeError as e:  # an option that is not a Problem field
        raise ConfigError(f"{spec!r}: {e}") from None


# -- from_expression("...") ---------------------------------------------------------------------

FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "abs": torch.abs,
    "cos": torch.cos,
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "sqrt": torch.sqrt,
    "tanh": torch.tanh,
}
CONSTANTS = {"pi": math.pi}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_ALLOWED = "numbers, variable names, + - * / **, unary -, and calls to " + ", ".join(
    sorted(FUNCTIONS)
)


def _natural_key(name: str) -> tuple:
    """Sort key putting x2 before x10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _variables(tree: ast.AST) -> list[str]:
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return sorted(names - set(FUNCTIONS) - set(CONSTANTS), key=_natural_key)


def _compile(node: ast.AST, text: str, index: dict[str, int]) -> Callable[[Tensor], Any]:
    """Turn a whitelisted AST node into a function of the batched point x ``(..., d)``."""

    def bad(what: str, piece: ast.AST = node) -> ConfigError:
        segment = ast.get_source_segment(text, piece) or type(piece).__name__
        return ConfigError(
            f"expression {text!r}: {what} {segment!r} is not allowed; allowed: {_ALLOWED}"
        )

    if isinstance(node, ast.Expression):
        return _compile(node.body, text, index)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise bad("the constant")
        try:
            value = float(node.value)
        except OverflowError:
            raise ConfigError(
                f"expression {text[:60]!r}: a number in it is too large for a float "
                "(at most about 1.8e308)"
            ) from None
        # A tensor of x's dtype: Python arithmetic on big ints or negative bases would not be.
        return lambda x: torch.full((), value, dtype=x.dtype, device=x.device)
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            c = CONSTANTS[node.id]
            return lambda x: torch.full((), c, dtype=x.dtype, device=x.device)
        if node.id in FUNCTIONS:
            raise ConfigError(
                f"expression {text!r}: {node.id!r} is a function; call it, {node.id}(...)"
            )
        i = index[node.id]
        return lambda x: x[..., i]
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise bad("the operator in")
        operand = _compile(node.operand, text, index)
        if isinstance(node.op, ast.UAdd):
            return operand
        return lambda x: -operand(x)
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise bad("the operator in")
        left = _compile(node.left, text, index)
        exponent = _constant_value(node.right) if isinstance(node.op, ast.Pow) else None
        if exponent is not None:
            # x ** 2 with a Python exponent: torch's scalar pow, exact for integer powers.
            return lambda x: left(x) ** exponent
        right = _compile(node.right, text, index)
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            raise bad("attribute access", node.func)
        if not isinstance(node.func, ast.Name):
            raise bad("the call")
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise ConfigError(
                f"expression {text!r}: unknown function {fname!r}; "
                f"allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        if len(node.args) != 1 or node.keywords:
            raise ConfigError(f"expression {text!r}: {fname}() takes exactly one argument")
        fun, arg = FUNCTIONS[fname], _compile(node.args[0], text, index)
        return lambda x: fun(arg(x))
    if isinstance(node, ast.Attribute):
        raise bad("attribute access")
    raise bad("the construct")


def _constant_value(node: ast.AST) -> float | None:
    """The value of a plain (possibly negated) number, else None."""
    sign = 1.0
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        try:
            return sign * float(node.value)
        except OverflowError:
            return None  # compiled as a constant, which refuses it in one line
    return None


def from_expression(
    text: str,
    x0: Sequence[float] | Mapping[str, float] | Tensor | None = None,
    bounds: Any = None,
    f_star: float | None = None,
    name: str | None = None,
) -> Problem:
    """A problem from an arithmetic expression such as ``"(1-x)**2 + 100*(y-x**2)**2"``.

    The expression is parsed with :mod:`ast` and compiled from a whitelist, never evaluated:
    numbers, variable names, ``+ - * / **``, unary ``-``, the constant ``pi`` and calls to
    ``abs cos exp log sin sqrt tanh``. The variables are the other names it uses, in natural
    sorted order (``x, y``; ``x1, x2, ..., x10``): coordinate i of the point is the i-th of them.
    ``x0`` is a sequence in that order or a mapping name -> value; by default all ones, not zeros:
    zero is a critical point of every even expression and outside the domain of ``log`` and
    ``1/x``. Anything outside the whitelist raises :class:`ConfigError` naming the piece.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("an expression must be a non-empty string")
    if len(text) > 10_000:
        raise ConfigError(f"expression is {len(text)} characters long; at most 10000 allowed")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ConfigError(
            f"expression {text!r} is not valid: {e.msg} (column {e.offset})"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"expression {text[:40]!r}... is too deeply nested") from None
    variables = _variables(tree)
    try:
        body = _compile(tree, text.strip(), {v: i for i, v in enumerate(variables)})
    except RecursionError:
        raise ConfigError(f"expression {text[:40]!r}... is too deeply nested") from None
    if not variables:
        raise ConfigError(f"expression {text!r} uses no variables")

    def fn(x: Tensor) -> Tensor:
        return body(x).expand(x.shape[:-1])

    d = len(variables)
    if x0 is None:
        x0 = [1.0] * d
    elif isinstance(x0, Mapping):
        if set(x0) != set(variables):
            raise ConfigError(
                f"expression {text!r}: x0 must give a value for exactly the variables "
                f"{', '.join(variables)}; got {', '.join(map(str, x0))}"
            )
        x0 = [float(x0[v]) for v in variables]
    elif len(x0) != d:
        raise ConfigError(
            f"expression {text!r}: x0 has {len(x0)} values, the expression has {d} "
            f"variables ({', '.join(variables)})"
        )
    return Problem(
        fn=fn,
        x0=x0,
        name=name or text.strip(),
        category="custom",
        bounds=bounds,
        f_star=f_star,
        description=f"f({', '.join(variables)}) = {text.strip()}",
        params={"expression": text.strip(), "variables": variables},
    )


# -- from_module(model, loss_fn, data) ----------------------------------------------------------


def _as_data(data: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ConfigError("data must be a pair (X, Y) of arrays with one row per example")
    try:
        X, Y = (torch.as_tensor(a) for a in data)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ConfigError(f"data must be a pair (X, Y) of arrays: {_one_line(e)}") from None
    if X.ndim == 0 or Y.ndim == 0 or X.shape[0] != Y.shape[0] or X.shape[0] == 0:
        raise ConfigError(
            f"data X and Y must have the same number of rows (> 0), got shapes "
            f"{tuple(X.shape)} and {tuple(Y.shape)}"
        )
    if X.is_floating_point():
        X = X.to(torch.float64)
    if Y.is_floating_point():
        Y = Y.to(torch.float64)
    return X, Y


def from_module(
    model: torch.nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: tuple[Any, Any],
    batch_size: int | None = None,
    **options: Any,
) -> Problem:
    """A problem from a model, a loss and data: f(theta) = loss_fn(model_theta(X), Y).

    The module's parameters, flattened in ``named_parameters()`` order, are the point x; its
    current values are x0. The model runs through :func:`torch.func.functional_call`, vmapped
    over runs, with data and floating buffers cast to x's dtype and device. ``loss_fn(pred,
    target)`` must return the mean loss as a scalar. With ``batch_size`` the problem also gets a
    :class:`MiniBatch` over the rows of the data. ``options`` are passed on to :class:`Problem`
    (name, category, bounds, f_star, minimizers, target, description, params).
    """
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ConfigError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    X, Y = _as_data(data)
    n = X.shape[0]
    named = list(model.named_parameters())
    if not named:
        raise ConfigError("the model has no parameters to optimize")
    names = [k for k, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    x0 = torch.cat([p.detach().reshape(-1).to(torch.float64) for _, p in named])
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def loss_at(theta: Tensor, Xb: Tensor, Yb: Tensor) -> Tensor:
        like = {"dtype": theta.dtype, "device": theta.device}
        params = {
            k: t.view(s) for k, t, s in zip(names, torch.split(theta, sizes), shapes, strict=True)
        }
        bufs = {
            k: b.to(**like) if b.is_floating_point() else b.to(theta.device)
            for k, b in buffers.items()
        }
        Xb = Xb.to(**like) if Xb.is_floating_point() else Xb.to(theta.device)
        Yb = Yb.to(**like) if Yb.is_floating_point() else Yb.to(theta.device)
        return loss_fn(torch.func.functional_call(model, (params, bufs), (Xb,)), Yb)

    def runs(loss: Callable[..., Tensor], x: Tensor, *per_run: Tensor) -> Tensor:
        """``loss(theta_r, *data_r)`` for every run r of ``x (R, d)``, vmapped where possible."""
        try:
            out = torch.func.vmap(loss)(x, *per_run)
        except Exception:  # a model vmap cannot trace (in-place ops, .item()): one run at a time
            out = torch.stack([loss(*args) for args in zip(x, *per_run, strict=True)])
        if out.shape != x.shape[:1]:
            raise ConfigError(
                f"loss_fn must return the mean loss as a scalar, got shape {tuple(out.shape[1:])}"
            )
        return out

    def fn(x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        R = flat.shape[0]
        # The data go in as a batched input (expanded, not copied): with unbatched data vmap folds
        # the runs into one matmul whose blocking, and so whose rounding, depends on R.
        out = runs(loss_at, flat, X.expand(R, *X.shape), Y.expand(R, *Y.shape))
        return out.reshape(x.shape[:-1])

    minibatch = None
    if batch_size is not None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= n
        ):
            raise ConfigError(
                f"batch_size must be an integer in [1, {n}] (rows of data), got {batch_size!r}"
            )

        def batch_loss(theta: Tensor, idx: Tensor) -> Tensor:
            idx = idx.to(X.device)
            return loss_at(theta, X[idx], Y[idx])

        minibatch = MiniBatch(
            fn=lambda x, idx: runs(batch_loss, x, idx), n_data=n, batch_size=batch_size
        )

    options.setdefault("name", type(model).__name__)
    options.setdefault("x0", x0)
    try:
        return Problem(fn=fn, minibatch=minibatch, **options)
    except TypeError as e:  # an option that is not a Problem field
        raise ConfigError(f"from_module: {e}") from None
