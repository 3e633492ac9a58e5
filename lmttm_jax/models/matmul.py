"""Dense products `x @ w` with a weight gradient that XLA's CPU backend runs well.

jax differentiates `y = x @ w` (`x [..., k]`, `w [k, n]`) into `dw = (dy^T x)^T`: a
product contracted over every leading dimension of `x` and `dy` whose `[n, k]` result
is then transposed. On the CPU, XLA runs that as a transposed copy of `dy` and a
product of two transposed operands, once per weight at every step of the memory
scan. `matmul` has the value of `x @ w` and its gradients to float rounding (and no
forward-mode derivative, `jax.jvp`); its backward pass flattens `x` and `dy` to 2D and
computes `dw = x^T dy` with the result in its final order, which XLA runs as one
product without the copy.

`dot_general` is the same for Flax's `dot_general` fields (`nn.Dense`,
`nn.DenseGeneral`, the projections of `nn.MultiHeadDotProductAttention`); `Dense` is
`nn.Dense` with it (same parameters).
"""

import functools
import math

import flax.linen as nn
import jax
from jax import lax


@jax.custom_vjp
def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """`[..., k] @ [k, n] -> [..., n]`."""
    return x @ w


def _matmul_fwd(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return x @ w, (x, w)


def _matmul_bwd(res: tuple[jax.Array, jax.Array], dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = res
    dw = x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])  # [k, n]
    return (dy @ w.T).astype(x.dtype), dw.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def dot_general(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: lax.DotDimensionNumbers,
    precision: lax.PrecisionLike = None,
    preferred_element_type: jax.typing.DTypeLike | None = None,
) -> jax.Array:
    """`lax.dot_general`; a product of lhs's trailing with rhs's leading dimensions
    (no batch dimensions, equal dtypes, default precision) goes through `matmul`."""
    (lhs_contract, rhs_contract), batch = dimension_numbers
    k = len(lhs_contract)
    trailing = tuple(range(lhs.ndim - k, lhs.ndim))
    if (
        any(batch)
        or tuple(d % lhs.ndim for d in lhs_contract) != trailing
        or tuple(d % rhs.ndim for d in rhs_contract) != tuple(range(k))
        or precision is not None
        or preferred_element_type is not None
        or lhs.dtype != rhs.dtype
    ):
        return lax.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type)
    lead = lhs.shape[: lhs.ndim - k]
    w = rhs.reshape(math.prod(rhs.shape[:k]), -1)
    return matmul(lhs.reshape(lead + (w.shape[0],)), w).reshape(lead + rhs.shape[k:])


Dense = functools.partial(nn.Dense, dot_general=dot_general)
