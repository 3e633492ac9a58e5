"""Random bits on the CPU without a loop: the same Threefry bits, fewer operations.

JAX lowers its Threefry-2x32 hash on the CPU as a loop of 5 iterations (smaller
programs, faster compilation) and elsewhere as straight-line code. The loop costs
about 90 small operations per call (copies of its state at every iteration), and
every dropout layer of a step draws its mask with one call, inside the scan over
the steps: at the `scale=tiny` widths that was about a fifth of a train step.
`unroll_threefry_on_cpu` gives the CPU the straight-line lowering. The hash, and so
every random number of a seed, is the same; only how it is computed changes.
"""

import functools

import jax.extend.random
from jax.interpreters import mlir


@functools.cache
def unroll_threefry_on_cpu() -> bool:
    """Lowers Threefry-2x32 on the CPU as straight-line code (once per process).

    False, and JAX's own lowering kept, where this jax has no straight-line rule.
    """
    try:
        from jax._src.random import threefry2x32 as threefry  # the rule is not public
    except ImportError:
        return False
    rule = getattr(threefry, "_threefry2x32_lowering_rule", None)
    if rule is None:
        return False
    mlir.register_lowering(jax.extend.random.threefry2x32_p, rule, platform="cpu")
    return True


unroll_threefry_on_cpu()
