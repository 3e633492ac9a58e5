"""CPU kernels with Flax's parameters and, to float rounding, the values and gradients
of the layers they replace, faster on XLA's CPU backend (why: docs/performance.md).
`CPU` is the layer set built from them (`models/layers.py`).
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from lmttm_jax.models.cpu.dropout import Dropout, attention
from lmttm_jax.models.layers import Layers


@jax.custom_vjp
def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """`[..., k] @ [k, n] -> [..., n]`, the weight gradient as `x^T dy` on 2D views
    (jax's transposes `dy` and the result). No forward-mode derivative."""
    return x @ w


def _matmul_bwd(res: tuple[jax.Array, jax.Array], dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = res
    dw = x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])  # [k, n]
    return (dy @ w.T).astype(x.dtype), dw.astype(w.dtype)


matmul.defvjp(lambda x, w: (x @ w, (x, w)), _matmul_bwd)


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
# `nn.MultiHeadDotProductAttention` with hashed dropout on its weights and `matmul`.
MultiHeadAttention = functools.partial(
    nn.MultiHeadDotProductAttention,
    attention_fn=attention,
    qkv_dot_general=dot_general,
    out_dot_general=dot_general,
)


class PatchEmbedding(nn.Module):
    """Conv3D with kernel = stride = p (VALID) as `patches @ kernel` (the patches do
    not overlap), with `nn.Conv`'s parameters `kernel [p, p, p, C, dim]`, `bias [dim]`:
    `[bs, D, H, W, C] -> [bs, D//p, H//p, W//p, dim]`."""

    dim: int
    patch_size: int
    kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p, (bs, d, h, w, c) = self.patch_size, x.shape
        kernel = self.param("kernel", self.kernel_init, (p, p, p, c, self.dim))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.dim,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
        t, h, w = d // p, h // p, w // p
        x = x[:, : t * p, : h * p, : w * p].reshape(bs, t, p, h, p, w, p, c)
        patches = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(bs, t, h, w, p**3 * c)
        return matmul(patches, kernel.reshape(p**3 * c, self.dim)) + bias


# The GELUs' derivatives are given by hand so that autodiff keeps one residual per
# element, GELU'(x), instead of every intermediate of the formula.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_GELU_CUBIC = 0.044715


def _normal_cdf(x: jax.Array) -> jax.Array:
    return 0.5 * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


@jax.custom_jvp
def exact_gelu(x: jax.Array) -> jax.Array:
    """`nn.gelu(x, approximate=False)`."""
    return x * _normal_cdf(x)


@exact_gelu.defjvp
def _exact_gelu_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    cdf = _normal_cdf(x)
    pdf = jnp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
    return x * cdf, (cdf + x * pdf) * t


@jax.custom_jvp
def tanh_gelu(x: jax.Array) -> jax.Array:
    """`nn.gelu(x)` (the tanh approximation)."""
    return 0.5 * x * (1.0 + jnp.tanh(SQRT_2_OVER_PI * (x + TANH_GELU_CUBIC * x**3)))


@tanh_gelu.defjvp
def _tanh_gelu_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    th = jnp.tanh(SQRT_2_OVER_PI * (x + TANH_GELU_CUBIC * x**3))
    inner = SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_GELU_CUBIC * x * x)
    grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * inner
    return 0.5 * x * (1.0 + th), grad * t


@jax.custom_vjp
def shared_add(x: jax.Array, a: jax.Array) -> jax.Array:
    """`x [..., m, d] + a [m, d]`: `a` is shared by the leading (batch) axes.

    The gradient of `a` sums over the batch as a matrix-vector product: XLA's CPU
    reduction over a leading axis is many times slower than the same sum as a dot.
    """
    return x + a


def _shared_add_fwd(x: jax.Array, a: jax.Array) -> tuple[jax.Array, tuple]:
    # Zero-size arrays carry the input dtypes to the backward pass.
    return x + a, (jnp.zeros((0,), x.dtype), jnp.zeros((0,), a.dtype))


def _shared_add_bwd(dtypes: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x_type, a_type = dtypes
    flat = g.reshape((-1,) + g.shape[-2:])
    da = jnp.tensordot(jnp.ones(flat.shape[0], g.dtype), flat, axes=(0, 0))
    return g.astype(x_type.dtype), da.astype(a_type.dtype)


shared_add.defvjp(_shared_add_fwd, _shared_add_bwd)


def broadcast_batch(a: jax.Array, batch_size: int) -> jax.Array:
    """`[1, ..., d] -> [batch_size, ..., d]`, the gradient summed as in `shared_add`."""
    flat = a.reshape(-1, a.shape[-1])
    out = shared_add(jnp.zeros((batch_size,) + flat.shape, a.dtype), flat)
    return out.reshape((batch_size,) + a.shape[1:])


CPU = Layers("cpu", Dense, Dropout, MultiHeadAttention, PatchEmbedding, exact_gelu, tanh_gelu)
