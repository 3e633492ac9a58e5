"""The layers the models are written with, one set chosen by `ModelSpec.kernels`:
`FLAX`, Flax's own, or `cpu.layers.CPU`, our CPU kernels with the same parameters and,
to float rounding, the same outputs (a checkpoint made with one runs with the other).
"""

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax

KERNELS = ("auto", "cpu", "flax")  # `ModelSpec.kernels`; "auto": "cpu" on a CPU backend


@dataclasses.dataclass(frozen=True)
class Layers:
    """A layer set: each field takes the arguments of the Flax layer it stands for."""

    name: str  # "flax" or "cpu"
    Dense: Callable[..., nn.Module]  # nn.Dense
    Dropout: Callable[..., nn.Module]  # nn.Dropout, called with `deterministic=`
    MultiHeadAttention: Callable[..., nn.Module]  # nn.MultiHeadDotProductAttention
    PatchEmbedding: Callable[..., nn.Module]  # conv_patch_embedding
    exact_gelu: Callable[[jax.Array], jax.Array]  # erf GELU (PyTorch's, LMTTM reference's)
    tanh_gelu: Callable[[jax.Array], jax.Array]  # tanh GELU (nn.gelu's default, the TTM's)


def conv_patch_embedding(
    dim: int, patch_size: int, kernel_init: Callable, name: str | None = None
) -> nn.Conv:
    """Conv3D with kernel = stride = p = `patch_size`, VALID (a remainder is cut):
    `[bs, D, H, W, C] -> [bs, D//p, H//p, W//p, dim]`, `kernel [p, p, p, C, dim]`."""
    p = (patch_size,) * 3
    return nn.Conv(dim, p, p, "VALID", kernel_init=kernel_init, name=name)


FLAX = Layers(
    name="flax",
    Dense=nn.Dense,
    Dropout=nn.Dropout,
    MultiHeadAttention=nn.MultiHeadDotProductAttention,
    PatchEmbedding=conv_patch_embedding,
    exact_gelu=functools.partial(nn.gelu, approximate=False),
    tanh_gelu=nn.gelu,
)


def resolve_kernels(kernels: str) -> str:
    """`ModelSpec.kernels` -> "cpu" or "flax" ("auto": "cpu" on JAX's CPU backend)."""
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}; expected one of {KERNELS}")
    if kernels == "auto":
        return "cpu" if jax.default_backend() == "cpu" else "flax"
    return kernels
