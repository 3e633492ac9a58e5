"""Builds a model from `config.model` (checked beforehand by `lmttm_jax.config`)."""

import dataclasses

import flax.linen as nn
import ml_collections

from lmttm_jax.models.lmttm import LMTTM
from lmttm_jax.models.resnet import ResNet18_3D
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.ttm import TTM

MODELS = {"lmttm": LMTTM, "ttm": TTM}
BASELINES = {"resnet18_3d": ResNet18_3D}  # `model.dim` is its first stage's width


def build_model(
    model_config: ml_collections.ConfigDict, num_classes: int, volume_size: int
) -> nn.Module:
    """The model named by `config.model.name` for `volume_size`^3 inputs (the config
    is checked against the volume size by `lmttm_jax.config`)."""
    if model_config.name in BASELINES:
        return BASELINES[model_config.name](model_config.dim, num_classes)
    fields = {f.name for f in dataclasses.fields(ModelSpec)}
    spec = ModelSpec(**{k: v for k, v in model_config.items() if k in fields})
    return MODELS[model_config.name](spec, num_classes)
