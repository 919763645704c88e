"""The JAX side of benchmarks/peers.py: optax Adam, Newton and jaxopt L-BFGS, jit + vmap + scan.

Each builder returns ``(run, compile_seconds)``: ``run()`` gives ``(seconds, result)`` for one
timed call of the compiled program (compile time is measured apart, by ``lower().compile()``).
JAX is imported only by :func:`load`, so peers.py runs without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

jax = jnp = optax = jaxopt = None  # set by load()


def load() -> tuple[SimpleNamespace | None, str]:
    """The builders if JAX, optax and jaxopt import, else (None, why)."""
    global jax, jnp, optax, jaxopt
    try:
        import jax as _jax
        import jax.numpy as _jnp
        import jaxopt as _jaxopt
        import optax as _optax
    except ImportError as e:
        return None, f"{e.name} is not installed"
    _jax.config.update("jax_enable_x64", True)
    jax, jnp, optax, jaxopt = _jax, _jnp, _optax, _jaxopt
    return SimpleNamespace(adam=adam, newton=newton, lbfgs=lbfgs, versions=versions), ""


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{m} {version(m)}" for m in ("jax", "jaxlib", "optax", "jaxopt"))


def loss(problem) -> Callable:
    """optzoo's problem in jax.numpy, for one point."""
    if problem.name == "rosenbrock":

        def rosen(x):
            a, b = x[:-1], x[1:]
            return jnp.sum(100.0 * (b - a**2) ** 2 + (1.0 - a) ** 2)

        return rosen
    kw = problem.fn.keywords
    Q, lam = jnp.asarray(kw["Q"].numpy()), jnp.asarray(kw["lam"].numpy())

    def quad(x):
        z = x @ Q
        return 0.5 * jnp.sum(lam * z * z)

    return quad


def _compiled(fn: Callable, x0: np.ndarray) -> tuple[Callable, Callable[[], tuple], float]:
    xj = jnp.asarray(x0)
    t0 = time.perf_counter()
    exe = jax.jit(fn).lower(xj).compile()
    compile_s = time.perf_counter() - t0

    def run() -> tuple[float, object]:
        t = time.perf_counter()
        out = jax.block_until_ready(exe(xj))
        return time.perf_counter() - t, jax.tree_util.tree_map(np.asarray, out)

    return exe, run, compile_s


def adam(problem, x0: np.ndarray, steps: int, lr: float):
    f = loss(problem)
    opt = optax.adam(lr)

    def one(x):
        def body(carry, _):
            x, st = carry
            u, st = opt.update(jax.grad(f)(x), st, x)
            return (optax.apply_updates(x, u), st), None

        (x, _), _ = jax.lax.scan(body, (x, opt.init(x)), None, length=steps)
        return x

    _, run, compile_s = _compiled(jax.vmap(one), x0)
    return run, compile_s


def newton(problem, x0: np.ndarray, steps: int):
    f = loss(problem)

    def one(x):
        def body(x, _):
            return x - jnp.linalg.solve(jax.hessian(f)(x), jax.grad(f)(x)), None

        x, _ = jax.lax.scan(body, x, None, length=steps)
        return x

    _, run, compile_s = _compiled(jax.vmap(one), x0)
    return run, compile_s


def lbfgs(problem, x0: np.ndarray, steps: int, gtol: float):
    """jaxopt's LBFGS per run under vmap: returns |g| at each run's final iterate."""
    f = loss(problem)
    solver = jaxopt.LBFGS(fun=f, maxiter=steps, tol=gtol, history_size=10, linesearch="zoom")

    def one(x):
        x = solver.run(x).params
        return jnp.linalg.norm(jax.grad(f)(x))

    _, run, compile_s = _compiled(jax.vmap(one), x0)
    return run, compile_s
