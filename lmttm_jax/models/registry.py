"""Builds a model from `config.model` and checks its sizes before any compilation."""

import dataclasses

import flax.linen as nn
import ml_collections

from lmttm_jax.models.heads import HEADS
from lmttm_jax.models.lmttm import LMTTM
from lmttm_jax.models.recurrent import MemoryClassifier
from lmttm_jax.models.resnet import ResNet18_3D
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.ttm import TTM

MODELS: dict[str, type[MemoryClassifier]] = {"lmttm": LMTTM, "ttm": TTM}
BASELINES = {"resnet18_3d": ResNet18_3D}  # `model.dim` is its first stage's width
CHOICES = {
    "tokenizer": ("patch", "conv"),
    "read": ("tl", "tl_v11", "tl_mha"),
    "write": ("tl", "tl_v11", "tl_mha", "add_erase"),
    "processing": ("transformer", "mixer", "mlp"),
    "memory_init": ("learned", "zeros"),
    "head": HEADS,
}
POSITIVE = (
    "dim",
    "patch_size",
    "stem_channels",
    "num_units",
    "memory_tokens",
    "read_tokens",
    "tl_hidden_dim",
    "tl_mha_heads",
    "depth",
    "num_heads",
    "mlp_dim",
)


def _fail(field: str, value: object, expected: str) -> None:
    raise ValueError(f"config.model.{field}={value!r} is invalid: expected {expected}")


def model_spec(model_config: ml_collections.ConfigDict) -> ModelSpec:
    """`config.model` -> a validated `ModelSpec` (every field of ModelSpec is read)."""
    names = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(model_config.keys()) - names - {"name"})
    if unknown:
        raise ValueError(f"unknown field(s) config.model.{unknown[0]}; known: {sorted(names)}")
    spec = ModelSpec(**{k: v for k, v in model_config.items() if k in names})
    for field, choices in CHOICES.items():
        if getattr(spec, field) not in choices:
            _fail(field, getattr(spec, field), f"one of {choices}")
    for field in POSITIVE:
        if not isinstance(getattr(spec, field), int) or getattr(spec, field) < 1:
            _fail(field, getattr(spec, field), "a positive integer")
    if not 0.0 <= spec.dropout < 1.0:
        _fail("dropout", spec.dropout, "a rate in [0, 1)")
    if spec.processing == "transformer" and spec.dim % spec.num_heads:
        _fail("num_heads", spec.num_heads, f"a divisor of model.dim={spec.dim}")
    if "tl_mha" in (spec.read, spec.write) and spec.dim % spec.tl_mha_heads:
        _fail("tl_mha_heads", spec.tl_mha_heads, f"a divisor of model.dim={spec.dim}")
    if spec.share_weights and spec.processing != "transformer":
        _fail("share_weights", True, "False unless model.processing='transformer'")
    return spec


def build_model(
    model_config: ml_collections.ConfigDict, num_classes: int, volume_size: int
) -> nn.Module:
    """The model named by `config.model.name` for `volume_size`^3 inputs."""
    if model_config.name not in MODELS and model_config.name not in BASELINES:
        _fail("name", model_config.name, f"one of {tuple(MODELS) + tuple(BASELINES)}")
    spec = model_spec(model_config)
    if model_config.name in BASELINES:
        return BASELINES[model_config.name](spec.dim, num_classes)
    if model_config.name == "lmttm" and spec.write == "add_erase":
        _fail("write", spec.write, "tl, tl_v11 or tl_mha for LMTTM (add_erase is TTM's)")
    if spec.patch_size > volume_size:
        _fail("patch_size", spec.patch_size, f"at most the volume size {volume_size}")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes} is invalid: expected at least 2")
    return MODELS[model_config.name](spec, num_classes, cached=runs_cached(model_config.name, spec))


def runs_cached(name: str, spec: ModelSpec) -> bool:
    """Whether `build_model` builds the cached formulation of the recurrence:
    `model.cached` for LMTTM with `tl` read and write learners (see `ModelSpec.cached`)."""
    return spec.cached and name == "lmttm" and spec.read == spec.write == "tl"
