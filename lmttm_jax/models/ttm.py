"""Token Turing Machine baseline: one memory block, read / process / write.

Each step (as the original JAX TTM unit):

    Z_t = TL_read([M ; I_t] (+ PE_read))                  [bs, r, c]
    O_t = Process(Z_t)                                     [bs, r, c]
    M  <- TL_write([M ; I_t ; O_t] (+ PE_write))          [bs, m, c]
          or AddErase(M, O_t)

This is the step family of `step.py` with K = 1 unit of m tokens and the one
read offset 0. The memory starts at zeros (or a learned block, `memory_init`); the
recurrence, tokenizer and heads are the ones LMTTM uses, so the two differ only in
memory.

Weights of the original JAX TTM (scenic `TokenTuringMachineEncoder`) load with
`scenic_spec` and `convert_scenic_params` (see `convert.py` and `docs/ttm.md`).
"""

from lmttm_jax.models.convert import convert_scenic_params, scenic_spec
from lmttm_jax.models.recurrent import MemoryClassifier

__all__ = ["TTM", "convert_scenic_params", "scenic_spec"]


class TTM(MemoryClassifier):
    """TTM classifier: `[bs, D, H, W, C] -> {"logits": [bs, classes], ...}`.

    `spec.num_units` is not used. Parameters: `initial_memory` `[1, m, c]` (when
    learned) and, under `steps`, `read`, `process`, `write` and the position
    embeddings.
    """

    reads = (0,)
    process_name = "process"

    def memory_shape(self) -> tuple[int, ...]:
        return (1, self.spec.memory_tokens, self.spec.dim)
