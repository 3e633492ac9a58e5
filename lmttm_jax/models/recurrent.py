"""What LMTTM and TTM share: tokenizer -> memory recurrence (`step.py`, or with
`kernels="cpu"` its cached formulation, `cpu/recurrence.py`) -> head."""

import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lmttm_jax.models.cpu.layers import CPU
from lmttm_jax.models.cpu.recurrence import CachedRecurrence
from lmttm_jax.models.forms import FORMS
from lmttm_jax.models.heads import Head
from lmttm_jax.models.layers import FLAX, Layers, resolve_kernels
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.step import Carry, scan_steps
from lmttm_jax.models.tokenizer import TOKENIZERS

MEMORY_INITS = ("learned", "zeros")  # `ModelSpec.memory_init`


def layer_set(kernels: str) -> Layers:
    """The layers `kernels` (a value of `layers.KERNELS`) resolves to."""
    return CPU if resolve_kernels(kernels) == "cpu" else FLAX


class MemoryClassifier(nn.Module):
    """Base of the memory-token classifiers: `[bs, D, H, W, C] volumes -> {"logits":
    [bs, classes], ...}` (see `Head`).

    A subclass gives the read offsets, the processing unit's name, the shape of its
    initial memory and whether its `tl`/`tl` recurrence has a cached formulation.
    """

    spec: ModelSpec
    num_classes: int
    reads: ClassVar[tuple[int, ...]]
    process_name: ClassVar[str]
    cacheable: ClassVar[bool] = False

    def setup(self) -> None:
        s = self.spec
        layers = layer_set(s.kernels)
        self.tokenizer = TOKENIZERS[s.tokenizer](s, layers)
        self.head = Head(s.head, self.num_classes, FORMS[s.form])
        shape = self.memory_shape()
        if s.memory_init == "learned":
            memory = self.param("initial_memory", nn.initializers.normal(0.02), shape)
        else:
            memory = jnp.zeros(shape)
        self.memory = memory.reshape(1, -1, s.memory_tokens, s.dim)  # [1, K, W, c]
        steps = CachedRecurrence if self.cached else scan_steps(s.remat)
        self.steps = steps(s, self.reads, self.process_name, layers, name="steps")

    def initial_memory(self, batch_size: int) -> Carry:
        """The direct formulation's initial carry for a batch (nothing shared)."""
        slots = jnp.broadcast_to(self.memory, (batch_size,) + self.memory.shape[1:])
        return slots, jnp.zeros((), jnp.int32)

    def encode(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        """Runs the recurrence: `[bs, T, n, c] -> [bs, T, R r, c]` output tokens."""
        if self.cached:
            return self.steps(self.memory.astype(tokens.dtype), tokens, train)
        slots, t = self.initial_memory(tokens.shape[0])
        _, out = self.steps((slots.astype(tokens.dtype), t), tokens, train)
        return out

    def tokenize(self, volumes: jax.Array) -> jax.Array:
        """`[bs, D, H, W, C] -> [bs, T, n, c]` input tokens, one step per depth slab."""
        return self.tokenizer(volumes)

    def __call__(self, volumes: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        return self.head(self.encode(self.tokenize(volumes), train))

    @nn.nowrap
    def memory_shape(self) -> tuple[int, ...]:
        """Shape of the `initial_memory` parameter (K W tokens of width c)."""
        raise NotImplementedError

    @property
    def cached(self) -> bool:
        """Whether the recurrence runs in its cached formulation (`cpu/recurrence.py`)."""
        s = self.spec
        return resolve_kernels(s.kernels) == "cpu" and self.cacheable and s.read == s.write == "tl"

    @nn.nowrap
    def access_pattern(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The units read `[T, R]` (c + o mod K for the `reads` offsets o, c = t mod K)
        and written `[T]` ((c + 1) mod K) at each of `steps` steps."""
        k = math.prod(self.memory_shape()[:-2])  # K units
        c = np.arange(steps) % k
        return (c[:, None] + np.asarray(self.reads)) % k, (c + 1) % k
