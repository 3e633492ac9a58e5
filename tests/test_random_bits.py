"""Threefry on the CPU as straight-line code: the same bits, no loop."""

import jax
import jax.extend.random
import numpy as np

from lmttm_jax import random_bits

# Known-answer vectors of Threefry-2x32 with 20 rounds (Salmon et al., SC 2011;
# Random123's kat_vectors): key, counter -> output.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


def test_threefry_known_answers_and_no_loop():
    assert random_bits.unroll_threefry_on_cpu()  # registered on import of the package
    key = np.array([k for k, _, _ in KNOWN_ANSWERS], np.uint32)  # [3, 2]
    count = np.array([c for _, c, _ in KNOWN_ANSWERS], np.uint32)

    def hash_rows(key, count):
        return jax.vmap(jax.extend.random.threefry_2x32)(key, count)

    out = np.asarray(jax.jit(hash_rows)(key, count))
    np.testing.assert_array_equal(out, np.array([o for _, _, o in KNOWN_ANSWERS], np.uint32))

    def mask(key):
        return jax.random.bernoulli(key, 0.8, (4, 16))

    hlo = jax.jit(mask).lower(jax.random.key(0)).compile().as_text()
    if jax.default_backend() == "cpu":
        assert " while(" not in hlo
