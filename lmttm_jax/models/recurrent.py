"""What LMTTM and TTM share: tokenizer -> memory recurrence (one scan) -> head.

A subclass gives the per-step cell (`step_cls`) and the initial memory; this module
runs the cell over the depth steps with `flax.linen.scan`: memory is the carry,
parameters are broadcast to every step, the dropout RNG is split per step, and
whatever the cell `sow`s into `intermediates` is stacked along axis 1 (steps).
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.heads import Head
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.tokenizer import ConvTokenizer, PatchTokenizer

MEMORY_INITS = ("learned", "zeros")  # `ModelSpec.memory_init`


def make_tokenizer(spec: ModelSpec) -> nn.Module:
    """The tokenizer named by `spec.tokenizer`."""
    if spec.tokenizer == "patch":
        return PatchTokenizer(spec.dim, spec.patch_size, name="tokenizer")
    if spec.tokenizer == "conv":
        return ConvTokenizer(spec.dim, spec.patch_size, spec.stem_channels, name="tokenizer")
    raise ValueError(f"unknown tokenizer {spec.tokenizer!r}; expected patch or conv")


def scan_steps(step_cls: type[nn.Module], remat: bool = False) -> type[nn.Module]:
    """Lifts a cell `(carry, x_t, train) -> (carry, y_t)` to a scan over axis 1 of x
    (with `remat`, each step's activations are recomputed in the backward pass)."""
    if remat:
        step_cls = nn.remat(step_cls, static_argnums=(3,), prevent_cse=False)
    return nn.scan(
        step_cls,
        variable_broadcast="params",
        variable_axes={"intermediates": 1},
        split_rngs={"params": False, "dropout": True},
        in_axes=(1, nn.broadcast),
        out_axes=1,
    )


class MemoryClassifier(nn.Module):
    """Base of the memory-token classifiers.

    `[bs, D, H, W, C] volumes -> {"logits": [bs, classes], ...}` (see `Head`).
    `encode` gives the per-step output tokens `[bs, T, k, c]` before the head.
    """

    spec: ModelSpec
    num_classes: int
    step_cls: ClassVar[type[nn.Module]]

    def initial_memory(self, batch_size: int) -> Any:
        """The scan's initial carry for a batch (per sample, nothing shared)."""
        raise NotImplementedError

    def setup(self) -> None:
        self.tokenizer = make_tokenizer(self.spec)
        self.head = Head(self.spec.head, self.num_classes)
        self.steps = scan_steps(self.step_cls, self.spec.remat)(self.spec, name="steps")

    def encode(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        """Runs the recurrence: `[bs, T, n, c] -> [bs, T, k, c]` output tokens."""
        memory = jax.tree.map(
            lambda a: a.astype(tokens.dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
            self.initial_memory(tokens.shape[0]),
        )
        _, out = self.steps(memory, tokens, train)
        return out

    def tokenize(self, volumes: jax.Array) -> jax.Array:
        """`[bs, D, H, W, C] -> [bs, T, n, c]` input tokens, one step per depth slab."""
        if volumes.ndim != 5:
            raise ValueError(
                f"volumes must be [batch, D, H, W, C], got shape {tuple(volumes.shape)}"
            )
        if min(volumes.shape[1:4]) < self.spec.patch_size:
            raise ValueError(
                f"model.patch_size={self.spec.patch_size} is larger than the volume "
                f"{tuple(volumes.shape[1:4])}"
            )
        return self.tokenizer(volumes)

    def __call__(self, volumes: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        return self.head(self.encode(self.tokenize(volumes), train))
