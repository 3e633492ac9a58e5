"""LMTTM and TTM as Flax modules, and the pieces they share."""

from lmttm_jax.models.lmttm import LMTTM
from lmttm_jax.models.registry import MODELS, build_model, model_spec
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.ttm import TTM

__all__ = ["LMTTM", "MODELS", "TTM", "ModelSpec", "build_model", "model_spec"]
