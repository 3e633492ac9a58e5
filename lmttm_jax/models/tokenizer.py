"""Volume tokenizers: `[bs, D, H, W, C] -> [bs, T, n, dim]`, time = depth."""

from collections.abc import Callable

import flax.linen as nn
import jax

from lmttm_jax.models.forms import Initializer, model_form
from lmttm_jax.models.layers import FLAX, Layers
from lmttm_jax.models.spec import ModelSpec, choose


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
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        embed = self.layers.PatchEmbedding
        x = nn.relu(embed(self.dim, self.patch_size, self.kernel_init, name="patch")(x))
        bs, t, h, w, c = x.shape  # [bs, T, H//p, W//p, dim]
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
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(2):
            x = nn.Conv(self.stem_channels, (3, 3, 3), padding="SAME", name=f"stem_{i}")(x)
            x = nn.gelu(nn.LayerNorm(name=f"stem_norm_{i}")(x))
        patchify = PatchTokenizer(self.dim, self.patch_size, layers=self.layers, name="patchify")
        return patchify(x)


# Tokenizers by name: (spec, layers) -> module (named `tokenizer`).
TOKENIZERS: dict[str, Callable[[ModelSpec, Layers], nn.Module]] = {
    "patch": lambda s, layers: PatchTokenizer(
        s.dim, s.patch_size, model_form(s.form).kernel_init, layers, name="tokenizer"
    ),
    "conv": lambda s, layers: ConvTokenizer(
        s.dim, s.patch_size, s.stem_channels, layers, name="tokenizer"
    ),
}


def make_tokenizer(spec: ModelSpec, layers: Layers) -> nn.Module:
    """The tokenizer `spec.tokenizer` (a key of `TOKENIZERS`)."""
    return choose(TOKENIZERS, spec.tokenizer, "tokenizer")(spec, layers)
