"""Model forms (`ModelSpec.form`): ours, or the LMTTM authors' PyTorch model's minus
its bugs (docs/lmttm.md). A form fixes what the sizes do not; its processing units
are in `processing.py`.
"""

import dataclasses

import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class Form:
    """What a model form fixes besides the sizes.

    Attributes:
      name: the `ModelSpec.form` value.
      kernel_init: kernels of the tokenizer, the `tl` learners and the head.
      layer_norm_epsilon, fast_variance: every LayerNorm's epsilon and variance
        formula (`E[x^2] - E[x]^2` when fast, else the two-pass `E[(x - E[x])^2]`).
      learner_bias: the `tl` learners' Dense layers have biases.
      head_norm: a LayerNorm before the classifier.
    """

    name: str
    kernel_init: nn.initializers.Initializer
    layer_norm_epsilon: float
    fast_variance: bool
    learner_bias: bool
    head_norm: bool

    def layer_norm(self, name: str | None = None) -> nn.LayerNorm:
        """A LayerNorm of this form over the last axis."""
        return nn.LayerNorm(
            epsilon=self.layer_norm_epsilon, use_fast_variance=self.fast_variance, name=name
        )


# Flax's defaults (LeCun-normal kernels, LayerNorm epsilon 1e-6), as scenic's TTM.
OURS = Form("ours", nn.linear.default_kernel_init, 1e-6, True, True, True)
# PyTorch's: Xavier-uniform kernels (the PyTorch model's `init_weights`), LayerNorm
# epsilon 1e-5 with a two-pass variance, bias-free `tl` learners, no head LayerNorm.
PYTORCH = Form("pytorch", nn.initializers.xavier_uniform(), 1e-5, False, False, False)
FORMS = {form.name: form for form in (OURS, PYTORCH)}
