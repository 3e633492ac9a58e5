"""Variants of every dataset config on the defaults of `lmttm_jax/defaults.py` (the
reference LMTTM and the 100-epoch recipe).

Variants follow the config file: `configs/organ.py:model=ttm,size=64,scale=tiny`,
parsed into typed values by `parse_variant` (`model` lmttm|ttm|resnet18_3d, `size`
28|64, `scale` ref|cpu|tiny, `recipe` none|cpu; first value the default). A recipe
(`RECIPES`) is a whole training setup on top of the budget epochs: its scale (unless
`scale=` is given too) and its fields, e.g. `configs/adrenal.py:recipe=cpu,size=64`.
Any field can then be overridden, e.g. `--config.train.epochs=5`. Configs are
locked: an override of a field the config lacks, or of the wrong type, is an error.
The recipe of each scale and its measured results: docs/accuracy.md. The number of
classes and the task come from the dataset registry, never from the config.
"""

import ml_collections

from lmttm_jax import defaults

SCALES = defaults.SCALES
RESNET_WIDTH = {"ref": 64, "cpu": 16, "tiny": 8}
# The budget recipe of the `cpu` and `tiny` scales, sized to train AdrenalMNIST3D in
# about 20 minutes on a 2-core CPU (not searched further): fewer epochs, a higher
# peak learning rate; a 64^3 epoch costs about five 28^3 epochs, hence half as many.
BUDGET_EPOCHS = {28: 40, 64: 20}
# The `recipe=` variants: a scale (with its budget epochs, `BUDGET_EPOCHS`), config
# fields set on top, and fields per input size. `cpu` is the best point of the search
# so far (docs/accuracy.md), sized to the 20-minute budget of a 2-core CPU: two seeds
# without dropout, trained side by side (one core each) and averaged; 80 epochs at
# 28^3; at 64^3 60 epochs with patches of 7 voxels for the token grid of 28^3 (9 steps
# of 81 tokens), so an epoch costs a little more than at 28^3. Validation with TTA
# runs 8 views of each volume: in batches of 4 (28^3) or 2 (64^3) volumes, 16-32 a
# call, a pass is faster on this CPU than in batches of 64 (docs/performance.md).
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


def _parse(text: str, kind: type) -> object:
    try:
        return kind(text)
    except ValueError:
        return None


def parse_variant(arg: str | None, **defaults: str | int) -> ml_collections.ConfigDict:
    """`"size=64,scale=tiny"` -> {model: "lmttm", size: 64, scale: "tiny"}.

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


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The defaults, for the synthetic dataset (see `dataset_config`)."""
    return dataset_config("synthetic3d", arg)


def dataset_config(
    dataset: str, arg: str | None = None, *, flip: bool = False, scale: str = "ref"
) -> ml_collections.ConfigDict:
    """The locked config of `dataset` with the variants of `arg` applied.

    `flip`: random flips (for datasets whose label survives a mirror image); `scale`:
    the dataset's default scale.
    """
    variant = parse_variant(arg, scale=scale)
    recipe = RECIPES.get(variant.recipe)
    if recipe:  # the recipe's scale unless `scale=` is given too
        variant = parse_variant(arg, scale=recipe["scale"])
    config = defaults.default_config(dataset)  # the reference model, 100-epoch recipe
    config.data.size = variant.size
    config.data.flip = flip
    config.model.name = variant.model
    if variant.model == "ttm":
        config.model.memory_init = "zeros"  # as the original TTM
    if variant.size == 64:
        config.model.patch_size = 4
    config.model.update(SCALES[variant.scale])
    if variant.model == "resnet18_3d":  # `dim` is the first stage's width
        config.model.dim = RESNET_WIDTH[variant.scale]
    if variant.scale != "ref":
        config.train.epochs = BUDGET_EPOCHS[config.data.size]
        config.train.warmup_epochs = 2
        config.train.learning_rate = 1e-3
    fields = {**recipe["fields"], **recipe["size_fields"][variant.size]} if recipe else {}
    for path, value in fields.items():
        section, name = path.split(".")
        config[section][name] = value
    return config
