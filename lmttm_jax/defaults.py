"""Every field of a run config, its type and its default: the reference LMTTM at 28^3
and the 100-epoch recipe. `configs/base.py` applies the variants on top;
`config_check` rebuilds every config (also a run's `config.json`) on these fields."""

import dataclasses

import ml_collections

from lmttm_jax import compilation
from lmttm_jax.data import default_root
from lmttm_jax.models import ModelSpec

# Model widths by `scale` (the `:scale=` variant of the configs): the reference
# widths, a CPU-sized model and the demo's.
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


def default_config(dataset: str = "synthetic3d") -> ml_collections.ConfigDict:
    """The locked default config of `dataset` (a flag of the dataset registry)."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = dataset
    config.data.size = 28
    config.data.root = str(default_root())  # env MEDMNIST_ROOT, else ~/.medmnist
    config.data.download = True
    config.data.flip = False  # random flips along the three axes (on device)
    config.data.rot90 = False  # random 90-degree rotations in one plane (on device)
    config.data.shift = 0  # random translations of up to this many voxels per axis
    config.data.intensity = 0.0  # random intensity scale and offset of up to this fraction
    # Mixup: Beta(mixup, mixup) weights blend each training sample and its (smoothed)
    # one-hot target with another of the batch (0: off; 0.2-0.4 is usual).
    config.data.mixup = 0.0
    # Cross-validation: train on the pooled train+val minus stratified fold `fold` of
    # `folds`, validate on that fold, leave test untouched. 0: the file's train/val.
    config.data.folds = 0
    config.data.fold = 0
    # Test-time augmentation: average the probabilities over the views that `flip` and
    # `rot90` train with (8 flips, 10 rotations), for validation, test, predict, explain.
    config.data.tta = False

    config.model = ml_collections.ConfigDict(dataclasses.asdict(ModelSpec()))
    config.model.name = "lmttm"  # or "ttm", or the "resnet18_3d" baseline
    config.model.share_weights = True  # the reference applies one MDU layer `depth` times

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
    # Focal loss exponent: each class term of the loss scaled by (1 - p)^gamma (0: the
    # cross-entropy).
    config.train.focal_gamma = 0.0
    # For imbalanced classes: "loss" weighs each sample by N / (C n_c) of its class,
    # "batches" draws the epoch's samples so that every class is equally frequent;
    # "none" trains on the data as they are.
    config.train.class_balance = "none"
    config.train.compute_dtype = "float32"  # "bfloat16" on accelerators: bf16 compute
    # Skip (and count in metrics.jsonl) a step whose loss or gradients are not finite,
    # instead of stopping at the end of the epoch with the last good checkpoint kept.
    config.train.skip_nonfinite = False
    # Exponential moving average of the weights (0: off); when on, evaluation, model
    # selection, checkpoints' use in predict/explain all take the averaged weights.
    config.train.ema_decay = 0.0
    # An ensemble of `ensemble` members in one workdir (0 or 1: a single model), their
    # class probabilities averaged. "seeds": member i uses seed + i on the same split;
    # "folds": member i trains on train+val minus stratified fold i of `ensemble` and
    # is selected on fold i, so every sample trains all members but one.
    config.train.ensemble = 0
    config.train.ensemble_mode = "seeds"
    # Members trained at a time: 1 in this process one after the other; n > 1 each in
    # a child process on one CPU thread (about one per core: small models gain about
    # 1.5x on 2 cores). One thread rounds differently from many, so this can change
    # the numbers: a started ensemble keeps its value.
    config.train.ensemble_jobs = 1
    # JAX's persistent compilation cache (a folder; "" turns it off): programs compiled
    # once are reused by resumed runs, eval, predict, explain and every fold and seed.
    config.train.compile_cache = compilation.default_dir()
    config.lock()
    return config
