"""Volume tokenizers: `[bs, D, H, W, C] -> [bs, T, n, dim]`, time = depth."""

from collections.abc import Callable

import flax.linen as nn
import jax

from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.variants import Initializer, model_form


def num_patches(size: int, patch_size: int) -> int:
    """Patches per axis of a `size`-voxel axis; a remainder is cut (VALID)."""
    return size // patch_size


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
        p = self.patch_size
        x = nn.Conv(
            self.dim,
            (p, p, p),
            strides=(p, p, p),
            padding="VALID",
            kernel_init=self.kernel_init,
            name="patch",
        )(x)
        x = nn.relu(x)
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
