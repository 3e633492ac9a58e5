"""Volume tokenizers: `[bs, D, H, W, C] -> [bs, T, n, dim]`, time = depth."""

from collections.abc import Callable

import flax.linen as nn
import jax

from lmttm_jax.models.matmul import matmul
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.variants import Initializer, model_form


def num_patches(size: int, patch_size: int) -> int:
    """Patches per axis of a `size`-voxel axis; a remainder is cut (VALID)."""
    return size // patch_size


class PatchEmbedding(nn.Module):
    """Conv3D with kernel = stride = p (VALID), computed as one matmul per patch.

    The patches do not overlap, so the convolution is `patches @ kernel`: the
    volume is cut into its p^3 patches (a reshape and a transpose) and multiplied by
    the kernel flattened to `[p^3 C, dim]`. Parameters, their shapes and their
    initialisation are those of `nn.Conv` with `kernel_init` (`kernel [p, p, p, C,
    dim]`, `bias [dim]`); XLA's CPU convolution with this stride was several times
    slower, its gradient more so.

    `[bs, D, H, W, C] -> [bs, D//p, H//p, W//p, dim]`.
    """

    dim: int
    patch_size: int
    kernel_init: Initializer = nn.linear.default_kernel_init

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


class PatchTokenizer(nn.Module):
    """`patch`: Conv3D with kernel = stride = p (VALID), then ReLU.

    `[bs, D, H, W, C] -> [bs, D//p, (H//p)*(W//p), dim]`: one step per depth slab of
    p slices; voxels past the last whole patch are cut (28 with p=3 gives 9 steps of
    81 tokens, as in the LMTTM reference). `kernel_init`: the convolution's.
    """

    dim: int
    patch_size: int
    kernel_init: Initializer = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        embed = PatchEmbedding(self.dim, self.patch_size, self.kernel_init, name="patch")
        x = nn.relu(embed(x))
        bs, t, h, w, c = x.shape
        return x.reshape(bs, t, h * w, c)


class ConvTokenizer(nn.Module):
    """`conv`: two 3x3x3 conv layers (LayerNorm over channels, GELU) before the patch
    embedding, for more capacity than one linear patch. Normalisation is per voxel,
    so samples of a batch never mix.

    `[bs, D, H, W, C] -> [bs, D//p, (H//p)*(W//p), dim]`.
    """

    dim: int
    patch_size: int
    stem_channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(2):
            x = nn.Conv(self.stem_channels, (3, 3, 3), padding="SAME", name=f"stem_{i}")(x)
            x = nn.gelu(nn.LayerNorm(name=f"stem_norm_{i}")(x))
        return PatchTokenizer(self.dim, self.patch_size, name="patchify")(x)


# Tokenizers by name: spec -> module (named `tokenizer`).
TOKENIZERS: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "patch": lambda s: PatchTokenizer(
        s.dim, s.patch_size, model_form(s.variant).kernel_init, name="tokenizer"
    ),
    "conv": lambda s: ConvTokenizer(s.dim, s.patch_size, s.stem_channels, name="tokenizer"),
}


def make_tokenizer(spec: ModelSpec) -> nn.Module:
    """The tokenizer `spec.tokenizer` (a key of `TOKENIZERS`)."""
    if spec.tokenizer not in TOKENIZERS:
        raise ValueError(
            f"unknown tokenizer {spec.tokenizer!r}; expected one of {tuple(TOKENIZERS)}"
        )
    return TOKENIZERS[spec.tokenizer](spec)
