"""A trained model as evaluation, predict, explain and ensembles use it, and its class
probabilities with test-time augmentation.

`restore(source)` is the one restore path: a run directory (`config.json` and
`checkpoints/best`; an ensemble's members each from its own directory) or a shipped or
exported model's folder (`lmttm_jax/pretrained`). Parameters are checked against the
model `config.json` describes, so an edited config is named, not a shape error.
"""

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization, traverse_util

from lmttm_jax import compilation
from lmttm_jax import config as config_lib
from lmttm_jax import data as data_lib
from lmttm_jax.models import build_model
from lmttm_jax.workdir import Workdir, WorkdirError, read_json

SHIPPED = Path(__file__).with_name("pretrained")  # the models shipped in the package


def cast(tree: Any, dtype: jnp.dtype) -> Any:
    """Floating-point leaves of `tree` in `dtype`."""
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )


def tta_transforms(config: ml_collections.ConfigDict) -> tuple[bool, bool]:
    """(flip, rot90) views that test-time augmentation averages over: with
    `config.data.tta`, those of the dataset's label-preserving augmentations."""
    tta = config.data.tta
    return (tta and config.data.flip, tta and config.data.rot90)


def class_probs(
    apply_fn: Any,
    params: Any,
    x: jax.Array,
    compute_dtype: jnp.dtype = jnp.float32,
    tta: tuple[bool, bool] = (False, False),
) -> tuple[jax.Array, jax.Array]:
    """Eval-mode `x [bs, S, S, S, 1] -> probs [bs, C]` averaged over the views of
    `data.tta_views(x, *tta)` (one view without TTA), and the logits `[V, bs, C]`."""
    views = data_lib.tta_views(x, *tta)
    params, x = cast((params, jnp.concatenate(views)), compute_dtype)
    logits = apply_fn({"params": params}, x)["logits"].astype(jnp.float32)
    logits = logits.reshape(len(views), -1, logits.shape[-1])
    return jax.nn.softmax(logits).mean(axis=0), logits


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checked config, its dataset's registry entry, the model, and each member's
    inference parameters (one for a single run), with the first's best epoch."""

    config: ml_collections.ConfigDict
    info: data_lib.DatasetInfo
    model: Any
    params: tuple[Any, ...]
    best_epoch: int

    @property
    def size(self) -> int:
        return self.config.data.size

    def member(self, index: int) -> "Restored":
        """Member `index` alone."""
        return dataclasses.replace(self, params=(self.params[index],))


def members(config: ml_collections.ConfigDict) -> int:
    """The number of models `config` trains (1 without an ensemble)."""
    return max(config.train.ensemble, 1)


def abstract_params(model: Any, size: int) -> Any:
    """The parameters' shapes and dtypes for `size`^3 single-channel volumes."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1,) + (size,) * 3 + (1,)))
    return shapes["params"]


def check_params(tree: Any, abstract: Any, source: Path, described: Path) -> None:
    """`WorkdirError` naming `source` and the config `described` when the parameters
    `tree` are not those of the model it describes (shapes and names)."""
    want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(abstract).items()}
    flat = traverse_util.flatten_dict(tree) if isinstance(tree, dict) else {}
    got = {k: tuple(np.shape(v)) for k, v in flat.items()}
    if got != want:
        wrong = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        name = "/".join(wrong[0])
        raise WorkdirError(
            f"{source} does not hold the parameters of the model {described} describes "
            f"({name}: {got.get(wrong[0], 'absent')} stored, {want.get(wrong[0], 'absent')} "
            f"expected{' and others' if len(wrong) > 1 else ''}); was {described.name} "
            f"edited? Restore it, or train again in a new --workdir"
        )


def _checkpoint_params(run: Workdir, config: ml_collections.ConfigDict, model: Any) -> tuple:
    """The best checkpoint's inference parameters and its best epoch."""
    key = "ema_params" if config.train.ema_decay > 0 else "params"
    abstract = abstract_params(model, config.data.size)
    part, meta = run.checkpoints(read_only=True).restore_part("best", {key: abstract})
    source = run.checkpoints_path / "best"
    check_params(jax.device_get(part[key]), abstract, source, run.config_path)
    return part[key], meta["best"]["epoch"]


def _model(config: ml_collections.ConfigDict) -> tuple[data_lib.DatasetInfo, Any]:
    """Sets up the compile cache; the dataset's registry entry and the model."""
    compilation.setup(config.train.compile_cache)
    info = data_lib.get_info(config.data.name, config.data.root)
    return info, build_model(config.model, info.n_classes, config.data.size)


def _restore_run(workdir: Path, config: ml_collections.ConfigDict | None) -> Restored:
    run = Workdir(workdir)
    config = config or config_lib.load_run_config(run.path)
    info, model = _model(config)
    k = members(config)
    runs = [run] if k == 1 else [run.member(i) for i in range(k)]
    found = []  # members share the model
    for i, member in enumerate(runs):
        if k > 1 and not member.results_path.is_file():
            raise WorkdirError(
                f"{run} is an ensemble of {k} members, but member {i} is not "
                f"finished ({member.results_path} missing): run the training command again"
            )
        found.append(_checkpoint_params(member, config, model))
    params, best_epochs = zip(*found, strict=True)
    return Restored(config, info, model, params, best_epochs[0])


def shipped_dir(name: str) -> Path:
    """The folder of the shipped model `name` (ValueError naming the available ones)."""
    if name not in available():
        raise ValueError(
            f"--pretrained={name}: no such pretrained model; available: "
            f"{', '.join(available()) or 'none'}"
        )
    return SHIPPED / name


def available() -> list[str]:
    """The names of the shipped models (folders of `pretrained/` holding a card)."""
    return sorted(p.name for p in SHIPPED.iterdir() if (p / "card.json").is_file())


def member_path(directory: Path, index: int) -> Path:
    """Member `index`'s parameters in an exported folder."""
    return Path(directory) / f"member_{index}.msgpack"


def _restore_exported(directory: Path) -> Restored:
    raw = read_json(directory / "config.json", "the pretrained folder is damaged")
    raw["data"]["root"] = str(data_lib.default_root())
    try:
        config = config_lib.validate_config(raw)
    except config_lib.ConfigError as err:
        raise config_lib.ConfigError(f"{directory / 'config.json'}: {err}") from err
    info, model = _model(config)
    abstract = abstract_params(model, config.data.size)
    card = read_json(directory / "card.json", "the pretrained folder is damaged")
    sums = [m.get("sha256") for m in card["members"]]
    params = []
    for i in range(members(config)):
        path = member_path(directory, i)
        if not path.is_file():
            raise WorkdirError(f"{path} not found: the pretrained folder is incomplete")
        data = path.read_bytes()
        if i < len(sums) and sums[i] and hashlib.sha256(data).hexdigest() != sums[i]:
            raise WorkdirError(
                f"{path} does not match the SHA-256 in card.json: the file is damaged; "
                f"reinstall the package or export the run again"
            )
        try:
            tree = serialization.msgpack_restore(data)
        except Exception as err:  # msgpack's errors have no common base
            raise WorkdirError(f"{path}: not a flax msgpack file ({err})") from err
        check_params(tree, abstract, path, directory / "config.json")
        params.append(jax.device_put(tree))
    return Restored(config, info, model, tuple(params), card["members"][0]["best_epoch"])


def restore(source: str | Path, config: ml_collections.ConfigDict | None = None) -> Restored:
    """The model of `source`: a run directory (with its checked `config` when the
    caller has it; else its config.json is read) or an exported or shipped model's
    folder (`shipped_dir`)."""
    path = Path(source)
    if (path / "card.json").is_file():
        return _restore_exported(path)
    return _restore_run(path, config)


def predict_fn(restored: Restored) -> Callable[[np.ndarray], np.ndarray]:
    """A jitted `volumes [B, S, S, S] float32 in [0, 1] -> probs [B, C]` (eval mode,
    with the run's TTA; an ensemble's: the mean of its members' probabilities)."""
    dtype = jnp.dtype(restored.config.train.compute_dtype)
    tta = tta_transforms(restored.config)

    @jax.jit
    def predict(params: Any, volumes: jax.Array) -> jax.Array:
        return class_probs(restored.model.apply, params, volumes[..., None], dtype, tta)[0]

    return lambda volumes: np.mean(
        [np.asarray(predict(p, jnp.asarray(volumes))) for p in restored.params], axis=0
    )
