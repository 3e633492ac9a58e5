"""Volume tokenizers: `[bs, D, H, W, C] -> [bs, T, n, dim]`, time = depth."""

import flax.linen as nn
import jax

from lmttm_jax.models.forms import FORMS
from lmttm_jax.models.layers import FLAX, Layers
from lmttm_jax.models.spec import ModelSpec


def num_patches(size: int, patch_size: int) -> int:
    """Patches per axis of a `size`-voxel axis; a remainder is cut (VALID)."""
    return size // patch_size


class PatchTokenizer(nn.Module):
    """`patch`: Conv3D with kernel = stride = p (VALID), then ReLU.

    `[bs, D, H, W, C] -> [bs, D//p, (H//p)*(W//p), dim]`: one step per depth slab of
    p slices; a remainder is cut (28 with p=3: 9 steps of 81 tokens, as the reference).
    """

    spec: ModelSpec
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = self.spec
        embed = self.layers.PatchEmbedding(
            s.dim, s.patch_size, FORMS[s.form].kernel_init, name="patch"
        )
        x = nn.relu(embed(x))
        bs, t, h, w, c = x.shape  # [bs, T, H//p, W//p, dim]
        return x.reshape(bs, t, h * w, c)


class ConvTokenizer(nn.Module):
    """`conv`: two 3x3x3 conv layers (LayerNorm over channels per voxel, GELU) before
    the patch embedding: `[bs, D, H, W, C] -> [bs, D//p, (H//p)*(W//p), dim]`."""

    spec: ModelSpec
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(2):
            x = nn.Conv(self.spec.stem_channels, (3, 3, 3), padding="SAME", name=f"stem_{i}")(x)
            x = nn.gelu(nn.LayerNorm(name=f"stem_norm_{i}")(x))
        return PatchTokenizer(self.spec, self.layers, name="patchify")(x)


# Tokenizers by name (`ModelSpec.tokenizer`): (spec, layers) -> module.
TOKENIZERS = {"patch": PatchTokenizer, "conv": ConvTokenizer}
