"""Linked Memory Token Turing Machine: a ring of K linked memory units.

At step t the current unit c = t mod K and its neighbours c-1, c+1 are each read
together with the slab's tokens I_t (`step.py` with the read offsets (0, -1, +1)):

    O_t = MDU([Z_c ; Z_c-1 ; Z_c+1]),  Z_j = TL_read([M_j ; I_t] + PE_read)
    M_{c+1} <- TL_write([M_c ; M_c-1 ; M_c+1 ; I_t ; O_t] + PE_write)
"""

from lmttm_jax.models.recurrent import MemoryClassifier


class LMTTM(MemoryClassifier):
    """LMTTM classifier: `[bs, D, H, W, C] -> {"logits": [bs, classes], ...}`.

    Parameters: `initial_memory` `[1, K, W, c]` (when learned) and, under `steps`,
    `read`, `mdu`, `write` and the position embeddings.
    """

    reads = (0, -1, 1)
    process_name = "mdu"
    cacheable = True

    def memory_shape(self) -> tuple[int, ...]:
        s = self.spec
        return (1, s.num_units, s.memory_tokens, s.dim)
