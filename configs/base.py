"""Defaults: the reference LMTTM model and our training recipe.

Every dataset config derives from `dataset_config()`. The string argument selects
variants, comma separated:

  model=lmttm|ttm|resnet18_3d   the linked-memory model (default), the TTM baseline,
                    or the ResNet-18 3D CNN baseline
  size=28|64        input resolution; 64 uses patch 4 (16 steps of 256 tokens)
  scale=ref|cpu|tiny  reference widths (dim 448, 4 x 112 memory tokens), a CPU-sized
                    model (dim 128, 4 x 32 tokens) or the demo's (dim 64, 4 x 16, r 4);
                    cpu and tiny train on the budget recipe (40 epochs at 28^3, 20 at
                    64^3, 2 warmup epochs, peak learning rate 1e-3), ref for 100 epochs

e.g. `python main.py --config=configs/organ.py:model=ttm,size=64`. Any field can
then be overridden, e.g. `--config.train.epochs=5`. The number of classes and the
task are read from the dataset registry, never from the config.
"""

import dataclasses

import ml_collections

from lmttm_jax.compilation import default_dir as compile_cache_dir
from lmttm_jax.data import default_root
from lmttm_jax.models import ModelSpec

VARIANTS = {
    "model": ("lmttm", "ttm", "resnet18_3d"),
    "size": ("28", "64"),
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


def parse_variant(arg: str | None) -> dict[str, str]:
    """`"model=ttm,size=64"` -> {"model": "ttm", "size": "64", "scale": "ref"}."""
    chosen = {key: values[0] for key, values in VARIANTS.items()}
    for item in filter(None, (arg or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in VARIANTS or value not in VARIANTS[key]:
            choices = "; ".join(f"{k}={'|'.join(v)}" for k, v in VARIANTS.items())
            raise ValueError(f"bad config variant {item!r}: expected {choices}")
        chosen[key] = value
    return chosen


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The defaults, for the synthetic dataset (see `dataset_config`)."""
    return dataset_config("synthetic3d", arg)


def dataset_config(dataset: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """Full config for `dataset` with the variants in `arg` applied."""
    variant = parse_variant(arg)
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = dataset
    config.data.size = int(variant["size"])
    config.data.root = str(default_root())  # env MEDMNIST_ROOT, else ~/.medmnist
    config.data.download = True
    config.data.flip = False  # random flips along the three axes (on device)
    config.data.rot90 = False  # random 90-degree rotations in one plane (on device)
    config.data.shift = 0  # random translations of up to this many voxels per axis
    config.data.intensity = 0.0  # random intensity scale and offset of up to this fraction
    # Test-time augmentation: average the probabilities over the views that `flip` and
    # `rot90` train with (8 flips, 10 rotations), for validation, test, predict, explain.
    config.data.tta = False
    # Cross-validation: train on the pooled train+val minus stratified fold `fold` of
    # `folds`, validate on that fold, leave test untouched. 0: the file's train/val.
    config.data.folds = 0
    config.data.fold = 0

    config.model = ml_collections.ConfigDict(dataclasses.asdict(ModelSpec()))
    config.model.name = variant["model"]
    config.model.share_weights = True  # the reference applies one MDU layer `depth` times
    if variant["model"] == "ttm":
        config.model.memory_init = "zeros"  # as the original TTM
    if variant["size"] == "64":
        config.model.patch_size = 4
    config.model.update(SCALES[variant["scale"]])
    if variant["model"] == "resnet18_3d":  # `dim` is the first stage's width
        config.model.dim = RESNET_WIDTH[variant["scale"]]

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
    # Exponential moving average of the weights (0: off); when on, evaluation, model
    # selection, checkpoints' use in predict/explain all take the averaged weights.
    config.train.ema_decay = 0.0
    if variant["scale"] != "ref":
        config.train.epochs = BUDGET_EPOCHS[config.data.size]
        config.train.warmup_epochs = 2
        config.train.learning_rate = 1e-3
    config.train.compute_dtype = "float32"  # "bfloat16" on accelerators: bf16 compute
    # Skip (and count in metrics.jsonl) a step whose loss or gradients are not finite,
    # instead of stopping at the end of the epoch with the last good checkpoint kept.
    config.train.skip_nonfinite = False
    # JAX's persistent compilation cache (a folder; "" turns it off): programs compiled
    # once are reused by resumed runs, eval, predict, explain and every fold and seed.
    config.train.compile_cache = compile_cache_dir()
    return config
