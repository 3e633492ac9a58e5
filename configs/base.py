"""Defaults of every dataset config: the reference LMTTM and the training recipe.

Variants follow the config file: `configs/organ.py:model=ttm,size=64,scale=tiny`,
parsed into typed values by `parse_variant` (`model` lmttm|ttm|resnet18_3d, `size`
28|64, `scale` ref|cpu|tiny; first value the default). Any field can then be
overridden, e.g. `--config.train.epochs=5`. Configs are locked: an override of a field
the config lacks, or of the wrong type, is an error. The recipe of each scale and
its measured results: docs/accuracy.md. The number of classes and the task come from
the dataset registry, never from the config.
"""

import dataclasses

import ml_collections

from lmttm_jax.data import default_root
from lmttm_jax.models import ModelSpec

VARIANTS = {
    "model": ("lmttm", "ttm", "resnet18_3d"),
    "size": (28, 64),  # 64 uses patch 4 (16 steps of 256 tokens)
    "scale": ("ref", "cpu", "tiny"),
}
SCALES = {
    "ref": {},
    "cpu": dict(dim=128, memory_tokens=32, tl_hidden_dim=128, num_heads=4, mlp_dim=384, depth=2),
    "tiny": dict(
        dim=64,
        memory_tokens=16,
        tl_hidden_dim=64,
        num_heads=4,
        mlp_dim=128,
        depth=1,
        read_tokens=4,
    ),
}
RESNET_WIDTH = {"ref": 64, "cpu": 16, "tiny": 8}
# The budget recipe of the `cpu` and `tiny` scales, sized to train AdrenalMNIST3D in
# about 20 minutes on a 2-core CPU (not searched further): fewer epochs, a higher
# peak learning rate; a 64^3 epoch costs about five 28^3 epochs, hence half as many.
BUDGET_EPOCHS = {28: 40, 64: 20}


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
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = dataset
    config.data.size = variant.size
    config.data.root = str(default_root())  # env MEDMNIST_ROOT, else ~/.medmnist
    config.data.download = True
    config.data.flip = flip  # random flips along the three axes (on device)
    config.data.rot90 = False  # random 90-degree rotations in one plane (on device)
    # Cross-validation: train on the pooled train+val minus stratified fold `fold` of
    # `folds`, validate on that fold, leave test untouched. 0: the file's train/val.
    config.data.folds = 0
    config.data.fold = 0

    config.model = ml_collections.ConfigDict(dataclasses.asdict(ModelSpec()))
    config.model.name = variant.model
    config.model.share_weights = True  # the reference applies one MDU layer `depth` times
    if variant.model == "ttm":
        config.model.memory_init = "zeros"  # as the original TTM
    if variant.size == 64:
        config.model.patch_size = 4
    config.model.update(SCALES[variant.scale])
    if variant.model == "resnet18_3d":  # `dim` is the first stage's width
        config.model.dim = RESNET_WIDTH[variant.scale]

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 100
    config.train.batch_size = 32  # global batch, split over all devices
    config.train.eval_batch_size = 64
    config.train.optimizer = "adamw"  # or "adam" (the reference: constant 1e-4)
    config.train.schedule = "cosine"  # linear warmup then cosine decay; or "constant"
    config.train.learning_rate = 3e-4
    config.train.warmup_epochs = 5
    config.train.weight_decay = 0.05
    config.train.grad_clip = 1.0  # global norm; 0 disables
    config.train.label_smoothing = 0.0
    if variant.scale != "ref":
        config.train.epochs = BUDGET_EPOCHS[config.data.size]
        config.train.warmup_epochs = 2
        config.train.learning_rate = 1e-3
    config.train.compute_dtype = "float32"  # "bfloat16" on accelerators: bf16 compute
    # Skip (and count in metrics.jsonl) a step whose loss or gradients are not finite,
    # instead of stopping at the end of the epoch with the last good checkpoint kept.
    config.train.skip_nonfinite = False
    config.lock()
    return config
