"""Token Turing Machine baseline: one memory block, read / process / write.

Each step (as the original JAX TTM unit):

    Z_t = TL_read([M ; I_t] (+ PE_read))                  [bs, r, c]
    O_t = Process(Z_t)                                     [bs, r, c]
    M  <- TL_write([M ; I_t ; O_t] (+ PE_write))          [bs, m, c]
          or AddErase(M, O_t)

The memory starts at zeros (or a learned block, `memory_init`); the recurrence,
tokenizer and heads are the ones LMTTM uses, so the two differ only in memory.

Weights of the original JAX TTM (scenic `TokenTuringMachineEncoder`) load with
`scenic_spec` and `convert_scenic_params` (see `convert.py` and `docs/ttm.md`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.convert import convert_scenic_params, scenic_spec
from lmttm_jax.models.mlp import PositionEmbedding
from lmttm_jax.models.processing import make_processing_unit
from lmttm_jax.models.recurrent import MemoryClassifier
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.token_learner import AddEraseWrite, make_learner

__all__ = ["TTM", "TTMStep", "convert_scenic_params", "scenic_spec"]


class TTMStep(nn.Module):
    """One TTM step: `(M [bs, m, c], I_t [bs, n, c]) -> (M', O_t [bs, r, c])`.

    Sows `memory` `[bs, m, c]` after the write, and `read_weights` via the learner.
    """

    spec: ModelSpec

    @nn.compact
    def __call__(self, memory: jax.Array, inputs: jax.Array, train: bool):
        s, det = self.spec, not train
        reads = jnp.concatenate([memory, inputs], axis=1)
        if s.pos_embed:
            reads = PositionEmbedding(name="read_pos_embed")(reads)
        read = make_learner(
            s.read, s.read_tokens, s.tl_hidden_dim, s.dropout, s.tl_mha_heads, "read"
        )
        out = make_processing_unit(
            s.processing, s.depth, s.num_heads, s.mlp_dim, s.dropout, s.share_weights, "process"
        )(read(reads, deterministic=det), deterministic=det)

        if s.write == "add_erase":
            memory = AddEraseWrite(s.dropout, name="write")(memory, out, deterministic=det)
        else:
            writes = jnp.concatenate([memory, inputs, out], axis=1)
            if s.pos_embed:
                writes = PositionEmbedding(name="write_pos_embed")(writes)
            memory = make_learner(
                s.write, s.memory_tokens, s.tl_hidden_dim, s.dropout, s.tl_mha_heads, "write"
            )(writes, deterministic=det)
        self.sow("intermediates", "memory", memory)
        return memory, out


class TTM(MemoryClassifier):
    """TTM classifier: `[bs, D, H, W, C] -> {"logits": [bs, classes], ...}`."""

    step_cls = TTMStep

    def setup(self) -> None:
        super().setup()
        s = self.spec
        shape = (1, s.memory_tokens, s.dim)
        if s.memory_init == "learned":
            self.memory = self.param("initial_memory", nn.initializers.normal(0.02), shape)
        else:
            self.memory = jnp.zeros(shape)

    def initial_memory(self, batch_size: int) -> jax.Array:
        return jnp.broadcast_to(self.memory, (batch_size,) + self.memory.shape[1:])
