"""ResNet-18 with 3D convolutions: the CNN baseline of the MedMNIST 3D benchmark.

Four stages of two basic blocks (widths w, 2w, 4w, 8w; stride 2 from the second
stage on), a 3x3x3 stem without pooling (the inputs are only 28^3 or 64^3), global
average pooling and a linear classifier: `[bs, D, H, W, C] -> {"logits": [bs, classes]}`.
GroupNorm replaces the paper's BatchNorm: no batch statistics, samples never mix.
"""

import flax.linen as nn
import jax

STAGES = (2, 2, 2, 2)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, channels // 4) or 1)


class BasicBlock3D(nn.Module):
    """Two 3x3x3 convolutions with a residual (projected when the shape changes)."""

    features: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = (self.stride,) * 3
        y = nn.Conv(self.features, (3, 3, 3), s, use_bias=False)(x)
        y = nn.relu(group_norm(self.features)(y))
        y = nn.Conv(self.features, (3, 3, 3), use_bias=False)(y)
        y = group_norm(self.features)(y)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1, 1), s, use_bias=False, name="proj")(x)
            x = group_norm(self.features)(x)
        return nn.relu(x + y)


class ResNet18_3D(nn.Module):  # noqa: N801 (the architecture's name)
    """ResNet-18 3D of base width `width`, for `num_classes` outputs."""

    width: int
    num_classes: int

    @nn.compact
    def __call__(self, volumes: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        del train  # no dropout, no batch statistics
        x = nn.Conv(self.width, (3, 3, 3), use_bias=False, name="stem")(volumes)
        x = nn.relu(group_norm(self.width)(x))
        for stage, blocks in enumerate(STAGES):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock3D(self.width * 2**stage, stride)(x)
        return {"logits": nn.Dense(self.num_classes)(x.mean(axis=(1, 2, 3)))}
