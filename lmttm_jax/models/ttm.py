"""Token Turing Machine baseline: `step.py` with K = 1 memory block of m tokens and the
one read offset 0 (as the original JAX TTM unit):

    Z_t = TL_read([M ; I_t] (+ PE_read)),  O_t = Process(Z_t)
    M  <- TL_write([M ; I_t ; O_t] (+ PE_write))  or  AddErase(M, O_t)

The original's weights (scenic `TokenTuringMachineEncoder`) load with `scenic_spec`
and `convert_scenic_params` (`convert.py`, docs/ttm.md).
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
