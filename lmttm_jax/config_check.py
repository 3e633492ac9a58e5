"""Checks of a run's config, before any compilation or download: the one place for them.

`validate_config(config)` rebuilds the config on `lmttm_jax.defaults` as a locked
`ml_collections.ConfigDict`: ml_collections rejects a field the defaults lack and a
value of another type; a field written before runs had it (`OPTIONAL`) takes its
default, so old `config.json` files load. Then `RANGES` and the cross-field rules
check the values; the allowed names come from the registries of the data, model and
optimiser modules. `load_run_config(workdir)` does the same for `<workdir>/config.json`.
Errors are `ConfigError`: one line naming the field and what was expected.
"""

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from lmttm_jax import data as data_lib
from lmttm_jax import defaults
from lmttm_jax.models.heads import HEADS
from lmttm_jax.models.processing import PROCESSING_UNITS, SEED_PROCESSING_UNITS
from lmttm_jax.models.recurrent import MEMORY_INITS
from lmttm_jax.models.registry import BASELINES, MODELS
from lmttm_jax.models.token_learner import LEARNERS, WRITERS
from lmttm_jax.models.tokenizer import TOKENIZERS
from lmttm_jax.models.variants import FORMS
from lmttm_jax.optimizer import OPTIMIZERS, SCHEDULES

COMPUTE_DTYPES = ("float32", "bfloat16")
CLASS_BALANCES = ("none", "loss", "batches")
ENSEMBLE_MODES = ("seeds", "folds")
# Fields a config may lack (written before the field existed): they take the default.
OPTIONAL = (
    "data.folds",
    "data.fold",
    "data.tta",
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
    "model.cached",
    "model.remat",
    "model.variant",
)
TYPE_NAMES = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}


class ConfigError(ValueError):
    """A config field is unknown, missing, of the wrong type or out of range."""


def _at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f"an integer >= {low}"


def _one_of(names: Mapping | tuple) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in names), f"one of {tuple(names)}"


def _in(low: float, high: float, text: str) -> tuple[Callable[[Any], bool], str]:
    """`low <= v < high` (`text` says so in interval notation)."""
    return (lambda v: math.isfinite(v) and low <= v < high), f"a finite number in {text}"


POSITIVE_NUMBER = ((lambda v: math.isfinite(v) and v > 0), "a positive finite number")
# field -> (test of a value of the right type, what is expected)
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _at_least(0),
    "data.name": _one_of(data_lib.FLAGS),
    "data.size": _one_of(data_lib.SIZES),
    "data.root": ((lambda v: bool(v)), "a non-empty string"),
    "data.folds": _at_least(0),
    "data.fold": _at_least(0),
    "train.epochs": _at_least(1),
    "train.batch_size": _at_least(1),
    "train.eval_batch_size": _at_least(1),
    "train.optimizer": _one_of(OPTIMIZERS),
    "train.schedule": _one_of(SCHEDULES),
    "train.learning_rate": POSITIVE_NUMBER,
    "train.warmup_epochs": _at_least(0),
    "train.weight_decay": _in(0.0, math.inf, "[0, inf)"),
    "train.grad_clip": _in(0.0, math.inf, "[0, inf)"),
    "train.label_smoothing": _in(0.0, 1.0, "[0, 1)"),
    "train.ema_decay": _in(0.0, 1.0, "[0, 1)"),
    "train.focal_gamma": _in(0.0, 10.0, "[0, 10)"),
    "train.class_balance": _one_of(CLASS_BALANCES),
    "data.shift": _at_least(0),
    "data.intensity": _in(0.0, 1.0, "[0, 1)"),
    "data.mixup": _in(0.0, math.inf, "[0, inf)"),
    "train.ensemble": _at_least(0),
    "train.ensemble_mode": _one_of(ENSEMBLE_MODES),
    "train.ensemble_jobs": _at_least(1),
    "train.compute_dtype": _one_of(COMPUTE_DTYPES),
    "model.name": _one_of((*MODELS, *BASELINES)),
    "model.variant": _one_of(FORMS),
    "model.tokenizer": _one_of(TOKENIZERS),
    "model.read": _one_of(LEARNERS),
    "model.write": _one_of(WRITERS),
    "model.processing": _one_of(PROCESSING_UNITS),
    "model.memory_init": _one_of(MEMORY_INITS),
    "model.head": _one_of(HEADS),
    "model.dropout": _in(0.0, 1.0, "[0, 1)"),
}  # and every integer field of `model` (sizes and counts) is >= 1


def _fail(field: str, value: Any, expected: str) -> None:
    raise ConfigError(f"config.{field}={value!r} is invalid: expected {expected}")


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


def _check_combinations(config: ml_collections.ConfigDict) -> None:
    """Rules across fields: folds, head counts, learners per model, patch vs volume."""
    data, model = config.data, config.model
    if data.folds == 1:
        _fail("data.folds", 1, "0 (no cross-validation) or a number of folds >= 2")
    if data.folds == 0 and data.fold != 0:
        _fail("data.fold", data.fold, "0 when data.folds=0 (no cross-validation)")
    if data.folds and data.fold >= data.folds:
        _fail("data.fold", data.fold, f"a fold index in [0, {data.folds - 1}] (data.folds)")
    if config.train.ensemble > 1 and config.train.ensemble_mode == "folds" and data.folds:
        _fail("data.folds", data.folds, "0 with train.ensemble_mode='folds' (its own folds)")
    if model.processing == "transformer" and model.dim % model.num_heads:
        _fail("model.num_heads", model.num_heads, f"a divisor of model.dim={model.dim}")
    if "tl_mha" in (model.read, model.write) and model.dim % model.tl_mha_heads:
        _fail("model.tl_mha_heads", model.tl_mha_heads, f"a divisor of model.dim={model.dim}")
    seed = model.variant == "seed"
    if model.share_weights and model.processing != "transformer" and not seed:
        _fail("model.share_weights", True, "False unless model.processing='transformer'")
    if seed:
        _check_seed_form(model)
    if model.name == "lmttm" and model.write not in LEARNERS:
        _fail("model.write", model.write, f"one of {tuple(LEARNERS)} for LMTTM")
    if model.patch_size > data.size:
        _fail("model.patch_size", model.patch_size, f"at most data.size={data.size}")


def _check_seed_form(model: ml_collections.ConfigDict) -> None:
    """`model.variant='seed'` is the seed's LMTTM: its tokenizer, learners and units."""
    seed_fields = {
        "name": ("lmttm",),
        "tokenizer": ("patch",),
        "read": ("tl",),
        "write": ("tl",),
        "processing": tuple(SEED_PROCESSING_UNITS),
    }
    for field, allowed in seed_fields.items():
        if model[field] not in allowed:
            _fail(f"model.{field}", model[field], f"one of {allowed} with model.variant='seed'")


def validate_config(config: ml_collections.ConfigDict | Mapping) -> ml_collections.ConfigDict:
    """The run config `config` (a ConfigDict or a dict) checked, as a locked ConfigDict
    with the defaults of the optional fields it lacks; raises `ConfigError`.

    Touches no file and no device.
    """
    raw = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be an ml_collections.ConfigDict, got {type(config)}")
    checked = defaults.default_config()  # locked: the fields, their types and defaults
    _fill(checked, raw)
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
