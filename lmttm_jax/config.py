"""What a run config is: every field with its type and default, and the checks it passes.

`default_config(dataset)` is the reference LMTTM at 28^3 with the 100-epoch recipe
(`lmttm_jax.recipes` applies the variants and recipes on top). `validate_config`
rebuilds any config (a ConfigDict or a run's `config.json`) on these fields as a
locked ConfigDict, so old `config.json` files load (`OPTIONAL`, `RENAMED`), then
checks the values (`RANGES`, the cross-field rules). A command validates its config
once, at its start. Errors are `ConfigError`: one line naming the field and what was
expected.
"""

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from lmttm_jax import compilation, models
from lmttm_jax import data as data_lib
from lmttm_jax.optimizer import OPTIMIZERS, SCHEDULES

# Model widths by `scale` (the `:scale=` variant): the reference, a CPU size, the demo's.
SCALES = {
    "ref": {},
    "cpu": dict(dim=128, memory_tokens=32, tl_hidden_dim=128, num_heads=4, mlp_dim=384, depth=2),
    "tiny": dict(
        dim=64, memory_tokens=16, tl_hidden_dim=64, num_heads=4, mlp_dim=128, depth=1, read_tokens=4
    ),
}
COMPUTE_DTYPES = ("float32", "bfloat16")
ENSEMBLE_MODES = ("seeds", "folds")
CLASS_BALANCES = ("none", "loss", "batches")


def default_config(dataset: str = "synthetic3d") -> ml_collections.ConfigDict:
    """The locked default config of `dataset` (a flag of the dataset registry)."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = dataset
    config.data.size = 28
    config.data.root = str(data_lib.default_root())  # env MEDMNIST_ROOT, else ~/.medmnist
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
    # NIfTI inputs (own data, predict, explain): reoriented to RAS+ and resampled in
    # their physical proportions (False: the stored voxel grid, stretched to S^3).
    config.data.nifti_geometry = True

    config.model = ml_collections.ConfigDict(dataclasses.asdict(models.ModelSpec()))
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
    # Focal loss exponent: each class term scaled by (1 - p)^gamma (0: cross-entropy).
    config.train.focal_gamma = 0.0
    # For imbalanced classes: "loss" weighs each sample by N / (C n_c) of its class,
    # "batches" draws every class equally often; "none" trains on the data as they are.
    config.train.class_balance = "none"
    # With a class balance: logit adjustment (the loss sees the logits minus the log of
    # the class frequencies), so the probabilities are those of the data as they are.
    config.train.keep_prior = False
    config.train.compute_dtype = "float32"  # "bfloat16" on accelerators: bf16 compute
    # Skip (and count in metrics.jsonl) a step whose loss or gradients are not finite,
    # instead of stopping at the end of the epoch with the last good checkpoint kept.
    config.train.skip_nonfinite = False
    # Moving average of the weights (0: off); evaluation, selection, predict, explain use it.
    config.train.ema_decay = 0.0
    # An ensemble of `ensemble` members in one workdir (0 or 1: one model), probabilities
    # averaged. "seeds": member i uses seed + i; "folds": member i holds out (and is
    # selected on) stratified fold i of train+val.
    config.train.ensemble = 0
    config.train.ensemble_mode = "seeds"
    # Members trained at a time (n > 1: each in a child process on one CPU thread); a
    # started ensemble keeps its value, as one thread rounds differently from many.
    config.train.ensemble_jobs = 1
    # JAX's persistent compilation cache (a folder; "" turns it off; `compilation`).
    config.train.compile_cache = compilation.default_dir()
    config.lock()
    return config


# Fields a config may lack (written before the field existed): they take the default.
OPTIONAL = (
    "data.folds",
    "data.fold",
    "data.tta",
    "data.nifti_geometry",
    "data.shift",
    "data.intensity",
    "data.mixup",
    "train.skip_nonfinite",
    "train.compile_cache",
    "train.ema_decay",
    "train.ensemble",
    "train.ensemble_mode",
    "train.ensemble_jobs",
    "train.focal_gamma",
    "train.class_balance",
    "train.keep_prior",
    "model.kernels",
    "model.remat",
    "model.form",
)
# Fields and values renamed since a config.json may have been written: old field ->
# (its field now, {old value: value now}); `model.cached` became `model.kernels`.
RENAMED = {
    "model.variant": ("model.form", {"seed": "pytorch"}),
    "model.read": ("model.read", {"tl_v11": "tl_ttm"}),
    "model.write": ("model.write", {"tl_v11": "tl_ttm"}),
    "model.cached": (None, {}),
}
# Optional fields whose behaviour before they existed is not today's default: a config
# written then takes the old value, so a resumed run is computed as it was started.
OLD_BEHAVIOUR = {"data.nifti_geometry": False}
TYPE_NAMES = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}


class ConfigError(ValueError):
    """A config field is unknown, missing, of the wrong type or out of range."""


def _at_least(low: int, high: int | None = None) -> tuple[Callable[[Any], bool], str]:
    if high is None:
        return (lambda v: v >= low), f"an integer >= {low}"
    return (lambda v: low <= v <= high), f"an integer in [{low}, {high}]"


def _one_of(names: Mapping | tuple) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in names), f"one of {tuple(names)}"


def _in(low: float, high: float, text: str) -> tuple[Callable[[Any], bool], str]:
    """`low <= v < high` (`text` says so in interval notation)."""
    return (lambda v: math.isfinite(v) and low <= v < high), f"a finite number in {text}"


# field -> (test of a value of the right type, what is expected). Upper bounds catch
# typos (epochs=10**22), not choices anyone makes.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _at_least(0),
    "data.name": _one_of(data_lib.FLAGS),
    "data.size": _one_of(data_lib.SIZES),
    "data.root": ((lambda v: bool(v)), "a non-empty string"),
    "data.folds": _at_least(0, 100),
    "data.fold": _at_least(0),
    "data.shift": _at_least(0, 32),
    "data.intensity": _in(0.0, 1.0, "[0, 1)"),
    "data.mixup": _in(0.0, 100.0, "[0, 100)"),
    "train.epochs": _at_least(1, 100_000),
    "train.batch_size": _at_least(1, 65_536),
    "train.eval_batch_size": _at_least(1, 65_536),
    "train.optimizer": _one_of(OPTIMIZERS),
    "train.schedule": _one_of(SCHEDULES),
    "train.learning_rate": ((lambda v: math.isfinite(v) and v > 0), "a positive finite number"),
    "train.warmup_epochs": _at_least(0, 100_000),
    "train.weight_decay": _in(0.0, math.inf, "[0, inf)"),
    "train.grad_clip": _in(0.0, math.inf, "[0, inf)"),
    "train.label_smoothing": _in(0.0, 1.0, "[0, 1)"),
    "train.focal_gamma": _in(0.0, 10.0, "[0, 10)"),
    "train.class_balance": _one_of(CLASS_BALANCES),
    "train.ema_decay": _in(0.0, 1.0, "[0, 1)"),
    "train.ensemble": _at_least(0, 100),
    "train.ensemble_mode": _one_of(ENSEMBLE_MODES),
    "train.ensemble_jobs": _at_least(1, 1024),
    "train.compute_dtype": _one_of(COMPUTE_DTYPES),
    "model.name": _one_of((*models.MODELS, *models.BASELINES)),
    "model.form": _one_of(models.FORMS),
    "model.kernels": _one_of(models.KERNELS),
    "model.tokenizer": _one_of(models.TOKENIZERS),
    "model.read": _one_of(models.LEARNERS),
    "model.write": _one_of(models.WRITERS),
    "model.memory_init": _one_of(models.MEMORY_INITS),
    "model.head": _one_of(models.HEADS),
    "model.dropout": _in(0.0, 1.0, "[0, 1)"),
}  # and every integer field of `model` (sizes and counts) is >= 1


def _fail(field: str, value: Any, expected: str) -> None:
    raise ConfigError(f"config.{field}={value!r} is invalid: expected {expected}")


def _renamed(raw: Mapping) -> dict:
    """`raw` (a config as nested dicts) with the `RENAMED` fields under their new names."""
    raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for old, (new, values) in RENAMED.items():
        section, name = old.split(".")
        if not isinstance(raw.get(section), dict) or name not in raw[section]:
            continue
        value = raw[section].pop(name)
        if new is not None:
            raw[section].setdefault(new.split(".")[1], values.get(value, value))
    for field, value in OLD_BEHAVIOUR.items():
        section, name = field.split(".")
        if isinstance(raw.get(section), dict):
            raw[section].setdefault(name, value)
    return raw


def _fill(reference: ml_collections.ConfigDict, raw: Mapping, prefix: str = "") -> None:
    """Sets the fields of the locked `reference` to those of `raw` (recursively)."""
    for key, value in raw.items():
        field, default = prefix + key, reference.get(key)
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, Mapping):
                _fail(field, value, "a section of fields")
            _fill(default, value, field + ".")
            continue
        try:
            reference[key] = value
        except KeyError:
            known = sorted(reference.keys())
            raise ConfigError(f"unknown field config.{field}; known fields: {known}") from None
        except TypeError:
            _fail(field, value, TYPE_NAMES[type(default)])
        if value is None or isinstance(value, bool) != isinstance(default, bool):
            _fail(field, value, TYPE_NAMES[type(default)])  # ml_collections lets these in
    for key, default in reference.items():
        if key in raw:
            continue
        if isinstance(default, ml_collections.ConfigDict):
            _fill(default, {}, f"{prefix}{key}.")  # names its first missing field
        elif prefix + key not in OPTIONAL:
            raise ConfigError(f"config.{prefix}{key} is missing")


def _check_ranges(config: ml_collections.ConfigDict) -> None:
    for field, (ok, expected) in RANGES.items():
        value = config[field]
        if not ok(value):
            _fail(field, value, expected)
    for name, value in config.model.items():
        if type(value) is int and value < 1:
            _fail(f"model.{name}", value, "a positive integer")
    units = models.PROCESSING_UNITS[config.model.form]
    if config.model.processing not in units:
        _fail("model.processing", config.model.processing, f"one of {tuple(units)}")


def _check_combinations(config: ml_collections.ConfigDict) -> None:
    """Rules across fields: folds, ensembles, head counts, learners per model, patch size."""
    data, model, train = config.data, config.model, config.train
    if data.folds == 1:
        _fail("data.folds", 1, "0 (no cross-validation) or a number of folds >= 2")
    if data.folds == 0 and data.fold != 0:
        _fail("data.fold", data.fold, "0 when data.folds=0 (no cross-validation)")
    if data.folds and data.fold >= data.folds:
        _fail("data.fold", data.fold, f"a fold index in [0, {data.folds - 1}] (data.folds)")
    if train.ensemble < 2:
        for field, default in (("ensemble_mode", "seeds"), ("ensemble_jobs", 1)):
            if train[field] != default:
                why = f"its default with train.ensemble={train.ensemble} (no ensemble); set"
                _fail(f"train.{field}", train[field], f"{why} train.ensemble >= 2 for an ensemble")
    if train.keep_prior and train.class_balance == "none":
        _fail(
            "train.keep_prior", True, "False with train.class_balance='none' (no balance to undo)"
        )
    if train.ensemble > 1 and train.ensemble_mode == "folds" and data.folds:
        _fail("data.folds", data.folds, "0 with train.ensemble_mode='folds' (its own folds)")
    if model.processing == "transformer" and model.dim % model.num_heads:
        _fail("model.num_heads", model.num_heads, f"a divisor of model.dim={model.dim}")
    if "tl_mha" in (model.read, model.write) and model.dim % model.tl_mha_heads:
        _fail("model.tl_mha_heads", model.tl_mha_heads, f"a divisor of model.dim={model.dim}")
    pytorch = model.form == "pytorch"
    if model.share_weights and model.processing != "transformer" and not pytorch:
        _fail("model.share_weights", True, "False unless model.processing='transformer'")
    allowed = {"name": ("lmttm",), "tokenizer": ("patch",), "read": ("tl",), "write": ("tl",)}
    for field, values in allowed.items():  # `model.form='pytorch'`: the authors' LMTTM
        if pytorch and model[field] not in values:
            _fail(f"model.{field}", model[field], f"one of {values} with model.form='pytorch'")
    if model.name == "lmttm" and model.write not in models.LEARNERS:
        _fail("model.write", model.write, f"one of {tuple(models.LEARNERS)} for LMTTM")
    if model.patch_size > data.size:
        _fail("model.patch_size", model.patch_size, f"at most data.size={data.size}")


def validate_config(config: ml_collections.ConfigDict | Mapping) -> ml_collections.ConfigDict:
    """The run config `config` (a ConfigDict or a dict) checked, as a locked ConfigDict
    with the defaults of the optional fields it lacks; raises `ConfigError`."""
    raw = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be an ml_collections.ConfigDict, got {type(config)}")
    checked = default_config()  # locked: the fields, their types and defaults
    _fill(checked, _renamed(raw))
    _check_ranges(checked)
    _check_combinations(checked)
    return checked


def check_batch_sizes(
    config: ml_collections.ConfigDict, num_devices: int, train_samples: int | None = None
) -> None:
    """Global batches split evenly over `num_devices`; at least one training batch."""
    for field in ("batch_size", "eval_batch_size"):
        size = config.train[field]
        if size % num_devices:
            raise ConfigError(
                f"config.train.{field}={size} is not divisible by the number of devices "
                f"({num_devices}): use a multiple of {num_devices}"
            )
    if train_samples is not None and config.train.batch_size > train_samples:
        raise ConfigError(
            f"config.train.batch_size={config.train.batch_size} exceeds the {train_samples} "
            f"training samples: use at most {train_samples}"
        )


def load_run_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The config a run saved in `<workdir>/config.json`, checked (`ConfigError`)."""
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --workdir must be the directory of a training run "
            f"(python main.py --mode=train --config=... --workdir=DIR writes it)"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} should hold a JSON object, found {type(raw).__name__}")
    try:
        return validate_config(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def stored_config(workdir: str | Path) -> ml_collections.ConfigDict | None:
    """The checked config of the run in `workdir`, None where it has no config.json."""
    return load_run_config(workdir) if (Path(workdir) / "config.json").is_file() else None


def copy(config: ml_collections.ConfigDict, **fields: Any) -> ml_collections.ConfigDict:
    """A locked copy of a checked `config` with `fields` (`"train.epochs": 3`) set."""
    out = ml_collections.ConfigDict(config.to_dict())
    out.update_from_flattened_dict(fields)
    out.lock()
    return out
