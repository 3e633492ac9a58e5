"""The configs of every dataset by name, with their variants and recipes.

`dataset_config("organ", "model=ttm,size=64,scale=tiny")` is the config that
`configs/organ.py:model=ttm,size=64,scale=tiny` loads, and this file is itself a
config file (`--config=organ:model=ttm` on the command line names
`lmttm_jax/recipes.py:organ,model=ttm`): the defaults of `lmttm_jax.config`, the
dataset's own settings (`DATASETS`) and the `VARIANTS` (first value the default). A
recipe (`RECIPES`) is a whole training setup on top of the budget epochs: its scale
(unless `scale=` is given too) and its fields. The measured results of each recipe:
the docstrings of `configs/<dataset>.py` and docs/accuracy.md.
"""

from typing import Any

import ml_collections

from lmttm_jax import config as config_lib

RESNET_WIDTH = {"ref": 64, "cpu": 16, "tiny": 8}
# The budget of the `cpu` and `tiny` scales, sized to train AdrenalMNIST3D in about 20
# minutes on a 2-core CPU: fewer epochs, a higher peak learning rate; a 64^3 epoch
# costs about five 28^3 epochs, hence half as many.
BUDGET_EPOCHS = {28: 40, 64: 20}
# The `recipe=` variants: a scale (with its budget epochs), fields set on top, and
# fields per input size. `cpu`: two `tiny` seeds without dropout, with EMA and TTA,
# trained side by side and averaged; at 64^3 patches of 7 voxels (the token grid of
# 28^3); small validation batches are faster with TTA on a CPU (docs/performance.md).
RECIPES = {
    "cpu": {
        "scale": "tiny",
        "fields": {
            "train.ema_decay": 0.99,
            "data.tta": True,
            "model.dropout": 0.0,
            "train.ensemble": 2,
            "train.ensemble_jobs": 2,
        },
        "size_fields": {
            28: {"train.epochs": 80, "train.eval_batch_size": 4},
            64: {"train.epochs": 60, "model.patch_size": 7, "train.eval_batch_size": 2},
        },
    },
}
VARIANTS = {
    "model": ("lmttm", "ttm", "resnet18_3d"),
    "size": (28, 64),  # 64 uses patch 4 (16 steps of 256 tokens)
    "scale": ("ref", "cpu", "tiny"),
    "recipe": ("none", *RECIPES),
}
# Each dataset's short name (`configs/<name>.py`) -> its flag and its own settings:
# `flip` where a mirror image keeps the class (not OrganMNIST3D: left and right
# organs are classes), the default scale, fields set after the variants, and fields
# set after a recipe's own where the dataset needs them.
DATASETS: dict[str, dict[str, Any]] = {
    "organ": {"flag": "organmnist3d"},
    "nodule": {"flag": "nodulemnist3d", "flip": True},
    "adrenal": {"flag": "adrenalmnist3d", "flip": True},
    "fracture": {"flag": "fracturemnist3d", "flip": True},
    "vessel": {
        "flag": "vesselmnist3d",
        "flip": True,
        # 11 % positive: balanced batches, the prior kept, 40 epochs (docs/accuracy.md)
        "recipes": {
            "cpu": {"train.epochs": 40, "train.class_balance": "batches", "train.keep_prior": True}
        },
    },
    "synapse": {"flag": "synapsemnist3d", "flip": True},
    "synthetic": {
        "flag": "synthetic3d",
        "scale": "tiny",
        "fields": {"train.epochs": 8, "train.warmup_epochs": 1, "train.learning_rate": 2e-3},
    },
    "folder": {"flag": "folder", "fields": {"data.download": False}},
}
FLAGS = {d["flag"]: name for name, d in DATASETS.items()}  # flag -> short name


def _parse(text: str, kind: type) -> object:
    try:
        return kind(text)
    except ValueError:
        return None


def parse_variant(arg: str | None, **defaults: str | int) -> ml_collections.ConfigDict:
    """`"size=64,scale=tiny"` -> {model: "lmttm", size: 64, scale: "tiny", recipe: "none"}.

    Each value is parsed to the type of its key's choices in `VARIANTS` and must be one
    of them; a key not given takes `defaults[key]`, else its first choice.
    """
    chosen = {key: defaults.get(key, choices[0]) for key, choices in VARIANTS.items()}
    for item in filter(None, (arg or "").split(",")):
        key, _, text = item.partition("=")
        choices = VARIANTS.get(key, ())
        value = _parse(text, type(choices[0])) if choices else None
        if value not in choices:
            usage = "; ".join(f"{k}={'|'.join(map(str, v))}" for k, v in VARIANTS.items())
            raise ValueError(f"bad config variant {item!r}: expected {usage}")
        chosen[key] = value
    return ml_collections.ConfigDict(chosen)


def get_config(arg: str) -> ml_collections.ConfigDict:
    """`"organ,recipe=cpu"`: the dataset's name (or flag), then its variants."""
    dataset, _, variants = (arg or "").partition(",")
    return dataset_config(dataset, variants)


def dataset_config(dataset: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """The locked config of `dataset` (a short name of `DATASETS` or a registry flag)
    with the variants of `arg` applied."""
    name = FLAGS.get(dataset, dataset)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(DATASETS)}")
    own = DATASETS[name]
    variant = parse_variant(arg, scale=own.get("scale", "ref"))
    recipe = RECIPES.get(variant.recipe)
    if recipe:  # the recipe's scale unless `scale=` is given too
        variant = parse_variant(arg, scale=recipe["scale"])
    config = config_lib.default_config(own["flag"])  # the reference model, 100 epochs
    config.data.size = variant.size
    config.data.flip = own.get("flip", False)
    config.model.name = variant.model
    if variant.model == "ttm":
        config.model.memory_init = "zeros"  # as the original TTM
    if variant.size == 64:
        config.model.patch_size = 4
    config.model.update(config_lib.SCALES[variant.scale])
    if variant.model == "resnet18_3d":  # `dim` is the first stage's width
        config.model.dim = RESNET_WIDTH[variant.scale]
    if variant.scale != "ref":
        config.train.epochs = BUDGET_EPOCHS[config.data.size]
        config.train.warmup_epochs = 2
        config.train.learning_rate = 1e-3
    fields = {**recipe["fields"], **recipe["size_fields"][variant.size]} if recipe else {}
    fields |= own.get("recipes", {}).get(variant.recipe, {}) | own.get("fields", {})
    config.update_from_flattened_dict(fields)
    return config
