"""Start-up checks of a run's config: every field's name, type and range, before any
compilation or download.

`validate_config(config)` raises `ConfigError` naming the first bad field
(`config.train.learning_rate=-1.0 is invalid: expected a positive finite number`).
Unknown fields are errors at every level, so a typo in a config file or a
`config.json` stops the run instead of being ignored. The model section is checked
by `lmttm_jax.models.registry` (`model_spec`, `build_model`), which the model
builder uses too. `load_run_config(workdir)` reads and checks `<workdir>/config.json`.
"""

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_collections

from lmttm_jax import compilation
from lmttm_jax import data as data_lib
from lmttm_jax.models import build_model

COMPUTE_DTYPES = ("float32", "bfloat16")
# Fields a config may lack (configs written before the field existed) and their value.
OPTIONAL_DEFAULTS = {
    ("train", "skip_nonfinite"): False,
    ("data", "folds"): 0,
    ("data", "fold"): 0,
    ("data", "tta"): False,
    ("data", "shift"): 0,
    ("data", "intensity"): 0.0,
    ("train", "ema_decay"): 0.0,
    ("train", "compile_cache"): compilation.default_dir(),
}


class ConfigError(ValueError):
    """A config field is unknown, missing, of the wrong type or out of range."""


Check = Callable[[Any], str | None]  # value -> None if fine, else what was expected


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "True or False"


def string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty string"


def int_at_least(low: int) -> Check:
    def check(value: Any) -> str | None:
        return None if _is_int(value) and value >= low else f"an integer >= {low}"

    return check


def int_in(choices: tuple[int, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if _is_int(value) and value in choices else f"one of {choices}"

    return check


def number_in(low: float, high: float, high_open: bool = False, low_open: bool = False) -> Check:
    """A finite int or float in the interval (`low_open`/`high_open` exclude the ends)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    expected = f"a finite number in {left}{low}, {high}{right}"

    def check(value: Any) -> str | None:
        if not _is_number(value):
            return expected
        if value < low or (low_open and value == low) or value > high:
            return expected
        return expected if high_open and value == high else None

    return check


def one_of(choices: tuple) -> Check:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) and value in choices else f"one of {choices}"

    return check


SCHEMA: dict[str, dict[str, Check]] = {
    "data": {
        "name": one_of(data_lib.FLAGS),
        "size": int_in(data_lib.SIZES),
        "root": string,
        "download": boolean,
        "flip": boolean,
        "rot90": boolean,
        "folds": int_at_least(0),
        "fold": int_at_least(0),
        "tta": boolean,
        "shift": int_at_least(0),
        "intensity": number_in(0.0, 1.0, high_open=True),
    },
    "train": {
        "epochs": int_at_least(1),
        "batch_size": int_at_least(1),
        "eval_batch_size": int_at_least(1),
        "optimizer": one_of(("adamw", "adam")),
        "schedule": one_of(("cosine", "constant")),
        "learning_rate": number_in(0.0, math.inf, low_open=True, high_open=True),
        "warmup_epochs": int_at_least(0),
        "weight_decay": number_in(0.0, math.inf, high_open=True),
        "grad_clip": number_in(0.0, math.inf, high_open=True),
        "label_smoothing": number_in(0.0, 1.0, high_open=True),
        "compute_dtype": one_of(COMPUTE_DTYPES),
        "skip_nonfinite": boolean,
        "ema_decay": number_in(0.0, 1.0, high_open=True),
        "compile_cache": lambda v: None if isinstance(v, str) else "a folder, or '' for none",
    },
}
TOP_LEVEL = {"seed": int_at_least(0)}
SECTIONS = ("data", "model", "train")


def _fail(field: str, value: Any, expected: str) -> None:
    raise ConfigError(f"config.{field}={value!r} is invalid: expected {expected}")


def _check_keys(section: str, keys: set[str], known: set[str]) -> None:
    unknown = sorted(keys - known)
    if unknown:
        where = f"config.{section}." if section else "config."
        raise ConfigError(f"unknown field {where}{unknown[0]}; known fields: {sorted(known)}")


def _check_section(config: ml_collections.ConfigDict, section: str) -> None:
    sub = config[section]
    if not isinstance(sub, ml_collections.ConfigDict):
        _fail(section, sub, "a section of fields")
    fields = SCHEMA[section]
    _check_keys(section, set(sub.keys()), set(fields))
    for name, check in fields.items():
        if name not in sub:
            if (section, name) in OPTIONAL_DEFAULTS:
                continue
            raise ConfigError(f"config.{section}.{name} is missing")
        expected = check(sub[name])
        if expected is not None:
            _fail(f"{section}.{name}", sub[name], expected)


def _check_folds(data: ml_collections.ConfigDict) -> None:
    """`folds` is 0 (the file's train/val split) or >= 2, and `fold` < `folds`."""
    folds, fold = data.get("folds", 0), data.get("fold", 0)
    if folds == 1:
        _fail("data.folds", folds, "0 (no cross-validation) or a number of folds >= 2")
    if folds == 0 and fold != 0:
        _fail("data.fold", fold, "0 when data.folds=0 (no cross-validation)")
    if folds and fold >= folds:
        _fail("data.fold", fold, f"a fold index in [0, {folds - 1}] (data.folds={folds})")


def _check_model(config: ml_collections.ConfigDict) -> None:
    """Field names, types and ranges of `config.model` (via the model registry)."""
    model = config.model
    if not isinstance(model, ml_collections.ConfigDict):
        _fail("model", model, "a section of fields")
    for name in ("share_weights", "pos_embed", "cached", "remat"):
        if name in model and not isinstance(model[name], bool):
            _fail(f"model.{name}", model[name], "True or False")
    if "dropout" in model and not _is_number(model.dropout):
        _fail("model.dropout", model.dropout, "a rate in [0, 1)")
    try:
        build_model(model, 2, config.data.size)  # builds the module; compiles nothing
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err


def validate_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Checks every field of a run config; returns it, or raises `ConfigError`.

    Covers `seed`, `data.*` (dataset flag in the registry, size 28 or 64, root,
    switches, cross-validation folds), `train.*` (positive counts, rates in range,
    optimizer / schedule / compute dtype choices) and `model.*` (the model registry's
    checks, including `patch_size` against `data.size`). Touches no file and no device.
    """
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"a config must be an ml_collections.ConfigDict, got {type(config)}")
    _check_keys("", set(config.keys()), set(TOP_LEVEL) | set(SECTIONS))
    for section in SECTIONS:
        if section not in config:
            raise ConfigError(f"config.{section} is missing")
    for name, check in TOP_LEVEL.items():
        if name not in config:
            raise ConfigError(f"config.{name} is missing")
        expected = check(config[name])
        if expected is not None:
            _fail(name, config[name], expected)
    _check_section(config, "data")
    _check_folds(config.data)
    _check_section(config, "train")
    _check_model(config)
    return config


def with_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with the optional fields it lacks set to their defaults."""
    config = ml_collections.ConfigDict(config.to_dict())
    for (section, name), value in OPTIONAL_DEFAULTS.items():
        if section in config and name not in config[section]:
            config[section][name] = value
    return config


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
    config = ml_collections.ConfigDict(raw)
    try:
        return with_defaults(validate_config(config))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
