"""One training run: `train_and_evaluate(config, workdir)` and the pure steps.

The train step is one `jax.jit` program over a mesh of all devices (axis `data`):
state replicated, batch split along `data`. The model is selected on validation (best
AUC, ACC breaks ties); test is evaluated once, at the end, with the selected
checkpoint. Ensembles, sweeps and tables of runs build on this module
(`lmttm_jax.experiments`), never inside it.
"""

import datetime
import functools
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh
from tensorboardX import SummaryWriter
from tqdm import tqdm

from lmttm_jax import compilation, evaluate, inference, parallel
from lmttm_jax import config as config_lib
from lmttm_jax import data as data_lib
from lmttm_jax import workdir as workdir_lib
from lmttm_jax.inference import cast
from lmttm_jax.models import build_model
from lmttm_jax.optimizer import learning_rate_schedule, make_optimizer


class TrainState(train_state.TrainState):
    """Flax's train state plus `ema_params`, the exponential moving average of `params`
    (None unless `config.train.ema_decay` > 0; evaluation then uses it)."""

    ema_params: Any = None


Split = tuple[np.ndarray, np.ndarray]  # uint8 images [N, S, S, S], int32 labels [N]


# ----------------------------------------------------------------------------- setup


def create_train_state(
    config: ml_collections.ConfigDict, model: Any, rng: jax.Array, steps_per_epoch: int
) -> TrainState:
    """Initialises parameters for `config.data.size`^3 single-channel volumes."""
    size = config.data.size
    params = jax.jit(model.init)(rng, jnp.zeros((1, size, size, size, 1)))["params"]
    tx = make_optimizer(config.train, steps_per_epoch)
    ema = jax.tree.map(jnp.copy, params) if config.train.ema_decay > 0 else None  # own buffers
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=ema)
    # A strongly typed step, as a restored checkpoint has: the steps compiled for a
    # fresh state then serve a resumed or restored one too.
    return state.replace(step=jnp.zeros((), jnp.int32))


# ----------------------------------------------------------------------------- steps


def soft_targets(labels: jax.Array, num_classes: int, smoothing: float = 0.0) -> jax.Array:
    """One-hot targets `[bs] -> [bs, C]`, optionally label-smoothed."""
    targets = jax.nn.one_hot(labels, num_classes)
    return optax.smooth_labels(targets, smoothing) if smoothing else targets


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Per-sample softmax cross-entropy `[bs, C], [bs] -> [bs]`, optional label smoothing."""
    return optax.softmax_cross_entropy(logits, soft_targets(labels, logits.shape[-1], smoothing))


def focal_loss(logits: jax.Array, targets: jax.Array, gamma: float) -> jax.Array:
    """Per-sample softmax focal loss `[bs, C], [bs, C] -> [bs]`: each class's
    cross-entropy term scaled by `(1 - p_c)^gamma`, so confident samples count less
    (Lin et al. 2017; soft targets allowed). `gamma=0` is the cross-entropy."""
    log_p = jax.nn.log_softmax(logits)
    if gamma == 0:
        return -(targets * log_p).sum(-1)
    return -(targets * (1.0 - jnp.exp(log_p)) ** gamma * log_p).sum(-1)


def _class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Samples per class `[C]` of the labels `[N]`."""
    return np.bincount(np.asarray(labels).reshape(-1), minlength=num_classes)


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """Inverse-frequency weights `N / (C n_c)` of the training labels `[N]` (scikit-
    learn's "balanced"): each class carries the same total weight, a sample weighs 1
    on average. A class without samples gets weight 0."""
    counts = _class_counts(labels, num_classes)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return tuple(float(w) for w in weights)


def log_prior(labels: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """The log of each class's frequency in the training labels `[N]` (a class without
    samples counts as one): the offset `train.keep_prior` takes from the logits."""
    counts = np.maximum(_class_counts(labels, num_classes), 1)
    return tuple(float(v) for v in np.log(counts / counts.sum()))


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    rng: jax.Array,
    *,
    flip: bool,
    rot90: bool,
    label_smoothing: float,
    compute_dtype: jnp.dtype = jnp.float32,
    skip_nonfinite: bool = False,
    ema_decay: float = 0.0,
    shift: int = 0,
    intensity: float = 0.0,
    mixup: float = 0.0,
    focal_gamma: float = 0.0,
    class_weights: tuple[float, ...] | None = None,
    logit_offset: tuple[float, ...] | None = None,
) -> tuple[TrainState, jax.Array]:
    """One optimiser step on a global batch; returns the new state and the mean loss.

    Randomness derives from `rng` and the step number only; parameters, gradients and
    optimizer state stay float32. With `skip_nonfinite`, a step whose loss or gradients
    are not all finite leaves the state unchanged and returns a NaN loss. `ema_params`
    follows the parameters with decay min(ema_decay, (1 + step) / (10 + step)). The
    loss is `focal_loss` of the logits minus `logit_offset`, weighted by `class_weights`.
    """
    rng = jax.random.fold_in(rng, state.step)
    aug_rng, dropout_rng = jax.random.split(rng)
    images = data_lib.preprocess(batch["image"])
    if flip or rot90:
        images = data_lib.augment(aug_rng, images, flip=flip, rot90=rot90)
    if shift:
        images = data_lib.random_shift(jax.random.fold_in(aug_rng, 1), images, shift)
    if intensity:
        images = data_lib.random_intensity(jax.random.fold_in(aug_rng, 2), images, intensity)
    mix = None
    if mixup:
        images, *mix = data_lib.mixup(jax.random.fold_in(aug_rng, 3), images, mixup)

    def loss_fn(params):
        params, x = cast((params, images), compute_dtype)
        out = state.apply_fn({"params": params}, x, True, rngs={"dropout": dropout_rng})
        logits = out["logits"].astype(jnp.float32)
        if logit_offset is not None:
            logits = logits - jnp.asarray(logit_offset, jnp.float32)
        targets = soft_targets(batch["label"], logits.shape[-1], label_smoothing)
        if mix is not None:
            targets = data_lib.mix_targets(targets, *mix)
        losses = focal_loss(logits, targets, focal_gamma)
        if class_weights is not None:
            losses = losses * (targets @ jnp.asarray(class_weights, jnp.float32))
        return losses.mean()

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    new_state = state.apply_gradients(grads=grads)
    if ema_decay > 0:
        step = state.step.astype(jnp.float32)
        decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
        average = jax.tree.map(
            lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, new_state.params
        )
        new_state = new_state.replace(ema_params=average)
    if not skip_nonfinite:
        return new_state, loss
    finite = all_finite((loss, grads))
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return new_state, jnp.where(finite, loss, jnp.nan)


def inference_params(state: TrainState) -> Any:
    """The parameters that evaluation uses: the moving average when the run keeps one."""
    return state.params if state.ema_params is None else state.ema_params


def eval_step(
    apply_fn: Any,
    params: Any,
    batch: dict[str, jax.Array],
    compute_dtype: jnp.dtype = jnp.float32,
    tta: tuple[bool, bool] = (False, False),
) -> dict[str, jax.Array]:
    """Class probabilities `[bs, C]` and per-sample loss `[bs]` in eval mode (with
    TTA: of the averaged probabilities)."""
    x = data_lib.preprocess(batch["image"])
    probs, logits = inference.class_probs(apply_fn, params, x, compute_dtype, tta)
    if logits.shape[0] == 1:
        return {"probs": probs, "loss": cross_entropy(logits[0], batch["label"])}
    picked = jnp.take_along_axis(probs, batch["label"][:, None], axis=1)[:, 0]
    return {"probs": probs, "loss": -jnp.log(jnp.maximum(picked, 1e-12))}


class Steps:
    """The jitted `train(state, batch, rng)` and `eval(params, batch)` of `model` over a
    mesh: batch split along `data`, all else replicated. Each compiles on its first
    call (`compilation.AnnouncedStep`); `compile_seconds()` is their sum so far."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        mesh: Mesh,
        model: Any,
        class_weights: tuple[float, ...] | None = None,
        logit_offset: tuple[float, ...] | None = None,
    ):
        self.shardings = parallel.Shardings(mesh)
        repl, batch = self.shardings.replicated, self.shardings.batch
        dtype = jnp.dtype(config.train.compute_dtype)
        step = functools.partial(
            train_step,
            flip=config.data.flip,
            rot90=config.data.rot90,
            label_smoothing=config.train.label_smoothing,
            compute_dtype=dtype,
            skip_nonfinite=config.train.skip_nonfinite,
            ema_decay=config.train.ema_decay,
            shift=config.data.shift,
            intensity=config.data.intensity,
            mixup=config.data.mixup,
            focal_gamma=config.train.focal_gamma,
            class_weights=class_weights,
            logit_offset=logit_offset,
        )
        train = jax.jit(
            step, in_shardings=(repl, batch, repl), out_shardings=(repl, repl), donate_argnums=0
        )
        tta = inference.tta_transforms(config)
        evaluate = jax.jit(
            functools.partial(eval_step, model.apply, compute_dtype=dtype, tta=tta),
            in_shardings=(repl, batch),
            out_shardings=repl,
        )
        self.train = compilation.AnnouncedStep(train, "train step", log)
        self.eval = compilation.AnnouncedStep(evaluate, "eval step", log)

    def compile_seconds(self) -> float:
        return self.train.seconds + self.eval.seconds

    def put_batch(self, batch: data_lib.Batch) -> dict[str, jax.Array]:
        return self.shardings.global_batch({"image": batch["image"], "label": batch["label"]})


def evaluate_split(
    steps: Steps, params: Any, split: Split, batch_size: int, task: str
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics (`loss`, `acc`, `auc`) of `params` over every sample of a split, and
    the probs `[N, C]`."""
    images, labels = split
    probs, losses = [], []
    devices = steps.shardings.batch.mesh.size  # each batch splits evenly over them
    for batch in data_lib.eval_batches(images, labels, batch_size, devices):
        out = jax.device_get(steps.eval(params, steps.put_batch(batch)))
        probs.append(out["probs"][batch["mask"]])
        losses.append(out["loss"][batch["mask"]])
    probs = np.concatenate(probs)
    metrics = evaluate.medmnist_metrics(labels, probs, task)
    return {"loss": float(np.concatenate(losses).mean()), **metrics}, probs


# ----------------------------------------------------------------------------- program


def log(message: str) -> None:
    """Prints on process 0 only, after the local date and time (for cluster logs)."""
    if parallel.is_main_process():
        print(f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S} {message}", flush=True)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def run_progress(elapsed: float, epoch_seconds: list[float], epoch: int, epochs: int) -> str:
    """`elapsed H:MM:SS  eta H:MM:SS` after `epoch` of `epochs`: the ETA is the mean
    duration of the epochs this process trained (`epoch_seconds`, compilation left
    out) times the epochs left."""
    eta = (epochs - epoch) * sum(epoch_seconds) / len(epoch_seconds)
    return f"elapsed {_clock(elapsed)}  eta {_clock(eta)}"


def dataset_file(config: ml_collections.ConfigDict) -> tuple[data_lib.DatasetInfo, Path]:
    """The registry entry and the local file of `config.data` (downloaded if missing;
    a folder of volumes is converted, its split drawn with `config.seed` if need be)."""
    info = data_lib.get_info(config.data.name, config.data.root)
    if config.data.name == data_lib.FOLDER_FLAG:
        how = "reoriented to RAS+, kept in" if config.data.nifti_geometry else "stretched, not"
        log(f"NIfTI volumes: {how} their physical proportions (config.data.nifti_geometry)")
    path = data_lib.ensure_dataset(
        config.data.name,
        config.data.size,
        Path(config.data.root).expanduser(),
        download_missing=config.data.download,
        seed=config.seed,
        geometry=config.data.nifti_geometry,
    )
    return info, path


def load_splits(config: ml_collections.ConfigDict, path: Path) -> dict[str, Split | None]:
    """{split: (images, labels)}; a file without a test split gives `test: None`. With
    `config.data.folds`, train and val are fold `config.data.fold` of the pooled
    train+val (`data.folds`), and test is `None`: cross-validation never reads it."""
    if config.data.folds:
        load = functools.partial(data_lib.load_split, path, config.data.name, config.data.size)
        train, val = data_lib.cross_validation_split(
            load("train"), load("val"), config.data.folds, config.data.fold
        )
        log(
            f"cross-validation fold {config.data.fold} of {config.data.folds} on train+val "
            f"of {path}: {len(train[1])} training, {len(val[1])} held-out samples; "
            f"test split not read"
        )
        return {"train": train, "val": val, "test": None}
    splits: dict[str, Split | None] = {}
    for split in data_lib.SPLITS:
        try:
            splits[split] = data_lib.load_split(path, config.data.name, config.data.size, split)
        except data_lib.MissingSplitError as err:
            if split != "test":
                raise
            log(f"note: {err}; results report validation only")
            splits[split] = None
    return splits


def check_selectable(val: Split, info: data_lib.DatasetInfo) -> None:
    """A validation split that lacks a class cannot score AUC, so no epoch could be
    selected on it: `DatasetError` with the counts, before anything is trained."""
    counts = _class_counts(val[1], info.n_classes)
    missing = [info.label_names[c] for c in range(info.n_classes) if not counts[c]]
    if missing:
        shown = ", ".join(f"{n} {c}" for n, c in zip(info.label_names, counts, strict=True))
        raise data_lib.DatasetError(
            f"the validation split ({shown}) has no sample of {', '.join(missing)}: its AUC "
            f"is undefined and no epoch could be selected; put every class in val"
        )


def dataset_splits(
    config: ml_collections.ConfigDict,
) -> tuple[data_lib.DatasetInfo, dict[str, Split | None]]:
    """The registry entry of `config.data` and its splits (`load_splits`)."""
    info, path = dataset_file(config)
    return info, load_splits(config, path)


def _format(prefix: str, metrics: dict[str, float]) -> str:
    return "  ".join(f"{prefix}{k} {v:.4f}" for k, v in metrics.items())


def epoch_loss(losses: list[float], skip_nonfinite: bool) -> tuple[float, int]:
    """Mean training loss of an epoch's steps `[steps]` and the number of skipped steps
    (with `skip_nonfinite`: the non-finite losses, left out of the mean)."""
    losses = np.asarray(losses, dtype=np.float64)
    if not skip_nonfinite:
        return float(np.mean(losses)), 0
    finite = np.isfinite(losses)
    mean = float(np.mean(losses[finite])) if finite.any() else math.nan
    return mean, int(np.sum(~finite))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `epoch` is the last epoch whose checkpoint is saved."""

    def __init__(self, epoch: int):
        super().__init__(epoch)
        self.epoch = epoch


@jax.jit
def all_finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf of `tree` is finite (a scalar bool)."""
    return jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]).all()


def nonfinite_problem(train_loss: float, skipped: int, val_loss: float, state: TrainState) -> str:
    """What is not finite after an epoch ("" if the epoch may be saved)."""
    if skipped and not math.isfinite(train_loss):
        return f"every step ({skipped}) had a non-finite loss or gradients and was skipped"
    if not math.isfinite(train_loss):
        return f"training loss is {train_loss}"
    if not bool(all_finite(state.params)):
        return "the parameters are not all finite"
    if not math.isfinite(val_loss):
        return f"validation loss is {val_loss}"
    return ""


def train_epoch(
    steps: Steps, state: TrainState, batches: Iterable, rng: jax.Array
) -> tuple[TrainState, list[float]]:
    """One epoch of train steps over host `batches` ([b, s, s, s, 1] and [b]); returns
    the state and each step's loss, read from the device once at the end."""
    losses = []
    for batch in batches:
        state, loss = steps.train(state, steps.put_batch(batch), rng)
        losses.append(loss)
    return state, [float(loss) for loss in jax.device_get(losses)]


def record_epoch(run: workdir_lib.Workdir, board: SummaryWriter, row: dict) -> None:
    """Appends an epoch's `row` to the run's metrics.jsonl and its TensorBoard file."""
    run.append_metrics(row)
    for tag, value in row.items():
        if tag != "epoch":
            board.add_scalar(tag, value, row["epoch"])
    board.flush()


def begin_run(run: workdir_lib.Workdir, config: ml_collections.ConfigDict) -> dict | None:
    """Takes the run's lock (process 0) and stores `config`, refusing one that would
    change the run's results; returns the results of a finished run, else None."""
    run.begin_writing(log, lock=parallel.is_main_process())
    changes = run.check_config(config, config_lib.stored_config(run.path))
    if parallel.is_main_process():
        if changes:
            log(f"note: {run.config_path} updated: {'; '.join(changes)}")
        run.write_config(config)
    if run.results_path.exists():
        log(f"{run} is finished: results in {run.results_path} (--mode=eval evaluates again)")
        return run.read_results()
    return None


def finished_results(config: ml_collections.ConfigDict, workdir: str | Path) -> dict | None:
    """A finished run's results, read back after checking it was trained with `config`
    (None when it is not finished); takes no lock."""
    run = workdir_lib.Workdir(workdir)
    if not run.results_path.exists():
        return None
    run.check_config(config, config_lib.stored_config(run.path))
    return run.read_results()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains the run of the checked `config`, keeps the best-on-validation checkpoint,
    evaluates test once; returns `results.json`'s content.

    Running again with the same workdir resumes from the latest checkpoint and ends
    with the same results as an uninterrupted run; a config that would change the
    run's results is refused before anything is written. One training at a time holds
    the workdir's lock.
    """
    compilation.setup(config.train.compile_cache)
    run = workdir_lib.Workdir(workdir)
    try:
        return _train_and_evaluate(config, run)
    finally:
        run.end_writing()


def _train_and_evaluate(config: ml_collections.ConfigDict, run: workdir_lib.Workdir) -> dict:
    started = time.perf_counter()
    tc, main = config.train, parallel.is_main_process()
    run.check_config(config, config_lib.stored_config(run.path))  # before reading the data
    mesh = parallel.make_mesh()
    config_lib.check_batch_sizes(config, mesh.size)
    info, splits = dataset_splits(config)
    model = build_model(config.model, info.n_classes, config.data.size)
    check_selectable(splits["val"], info)
    n_train = len(splits["train"][1])
    config_lib.check_batch_sizes(config, mesh.size, n_train)
    steps_per_epoch = data_lib.num_batches(n_train, tc.batch_size, drop_last=True)
    finished = begin_run(run, config)  # again, holding the lock
    if finished is not None:
        return finished
    key = jax.random.key(config.seed)
    weights = offset = None
    if tc.class_balance == "loss":
        weights = balanced_class_weights(splits["train"][1], info.n_classes)
        log(f"class weights {', '.join(f'{w:.3f}' for w in weights)} (train.class_balance)")
    if tc.keep_prior:
        offset = log_prior(splits["train"][1], info.n_classes)
        log(f"log class priors {', '.join(f'{v:.3f}' for v in offset)} (train.keep_prior)")
    steps = Steps(config, mesh, model, weights, offset)
    state = create_train_state(config, model, jax.random.fold_in(key, 0), steps_per_epoch)
    state = jax.device_put(state, steps.shardings.replicated)
    train_rng = jax.random.fold_in(key, 1)
    schedule = learning_rate_schedule(tc, steps_per_epoch)
    ckpt = run.checkpoints(record=main)
    board = SummaryWriter(str(run.path)) if main else None  # TensorBoard event file
    state, meta = ckpt.restore_for_resume(state, log)
    if meta["epoch"]:
        log(f"resuming from {ckpt.path('latest', meta['epoch'])} after epoch {meta['epoch']}")
    epoch_seconds: list[float] = []
    if main:  # rows newer than the checkpoint (or torn) are trained (and written) again
        run.keep_metrics(meta["epoch"])
    n_params = sum(p.size for p in jax.tree.leaves(state.params))
    log(
        f"{config.model.name}: {n_params:,} parameters; {info.flag} {config.data.size}^3, "
        f"{n_train} training samples, {steps_per_epoch} steps/epoch of "
        f"{tc.batch_size} on {mesh.size} device(s), {jax.process_count()} process(es)"
    )

    try:  # Ctrl-C: the epoch in progress is dropped, the saved ones kept
        for epoch in range(meta["epoch"] + 1, tc.epochs + 1):
            start = time.perf_counter()
            state, val, row = fit_epoch(
                config, steps, state, splits, info.task, epoch, train_rng, schedule, ckpt
            )
            # Order matters for resuming: a row or a best checkpoint newer than `latest` is
            # rewritten identically when the epoch is trained again.
            if main:
                record_epoch(run, board, row)
            improved = save_epoch(ckpt, meta, epoch, state, val)
            epoch_seconds.append(time.perf_counter() - start - row["compile_seconds"])
            timing = run_progress(time.perf_counter() - started, epoch_seconds, epoch, tc.epochs)
            log(
                f"epoch {epoch}/{tc.epochs}  train_loss {row['train_loss']:.4f}  "
                f"{_format('val_', val)}  lr {row['learning_rate']:.2e}  "
                f"{row['seconds']:.1f}s  {timing}{'  *best' if improved else ''}"
            )
    except KeyboardInterrupt:
        raise TrainingInterrupted(ckpt.last_epoch()) from None

    state, meta = ckpt.restore("best", state)
    results = final_evaluation(config, run, steps, state, meta, info, splits)
    rows = run.read_metrics() if main else []
    results["train_samples_per_second"] = rows[-1]["train_samples_per_second"] if rows else None
    results["parameters"] = n_params
    if main:
        run.write_json(run.results_path, results)
        board.close()
    return results


def fit_epoch(
    config: ml_collections.ConfigDict,
    steps: Steps,
    state: TrainState,
    splits: dict[str, Split | None],
    task: str,
    epoch: int,
    rng: jax.Array,
    schedule: optax.Schedule,
    ckpt: workdir_lib.Checkpoints,
) -> tuple[TrainState, dict[str, float], dict]:
    """Trains epoch `epoch` (1-based) on `splits["train"]`, then evaluates
    `splits["val"]`: the new state, the validation metrics and the epoch's row of
    metrics.jsonl. A loss, parameter or validation loss that is not finite raises
    `FloatingPointError`, naming the checkpoints `ckpt` keeps."""
    tc = config.train
    start, compiled = time.perf_counter(), steps.compile_seconds()
    images, labels = splits["train"]
    n_steps = data_lib.num_batches(len(labels), tc.batch_size, drop_last=True)
    progress = tqdm(
        data_lib.train_batches(
            images, labels, tc.batch_size, config.seed, epoch, tc.class_balance == "batches"
        ),
        total=n_steps,
        desc=f"epoch {epoch}/{tc.epochs}",
        leave=False,
        disable=None if parallel.is_main_process() else True,
    )
    state, losses = train_epoch(steps, state, progress, rng)
    train_loss, skipped = epoch_loss(losses, tc.skip_nonfinite)
    train_seconds = time.perf_counter() - start - (steps.compile_seconds() - compiled)
    val = {"loss": math.nan}
    if math.isfinite(train_loss):
        params = inference_params(state)
        val, _ = evaluate_split(steps, params, splits["val"], tc.eval_batch_size, task)
    problem = nonfinite_problem(train_loss, skipped, val["loss"], state)
    if problem:
        skip = "" if tc.skip_nonfinite else ", or set config.train.skip_nonfinite=True"
        raise FloatingPointError(
            f"{problem} at epoch {epoch}; epoch {epoch} is not saved and {ckpt.kept()}. "
            f"Lower config.train.learning_rate{skip}"
        )
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        **{f"val_{k}": v for k, v in val.items()},
        "learning_rate": float(schedule(int(state.step))),
        "seconds": time.perf_counter() - start,
        "train_samples_per_second": n_steps * tc.batch_size / train_seconds,
        "skipped_steps": skipped,
        "compile_seconds": steps.compile_seconds() - compiled,
    }
    return state, val, row


def save_epoch(
    ckpt: workdir_lib.Checkpoints, meta: dict, epoch: int, state: TrainState, val: dict
) -> bool:
    """Saves `state` after `epoch` as `latest`, and first as `best` when `val` beats
    `meta["best"]` (then updated, as is `meta["epoch"]`); whether it was best."""
    improved = evaluate.is_better(val, meta["best"] and meta["best"]["val"])
    with workdir_lib.interrupts_deferred():  # an epoch's checkpoints are saved whole
        if improved:
            meta["best"] = {"epoch": epoch, "val": val}
            ckpt.save("best", epoch, state, meta)
        meta["epoch"] = epoch
        ckpt.save("latest", epoch, state, meta)
    return improved


def final_evaluation(
    config: ml_collections.ConfigDict,
    run: workdir_lib.Workdir,
    steps: Steps,
    state: TrainState,
    meta: dict,
    info: data_lib.DatasetInfo,
    splits: dict[str, Split | None],
) -> dict:
    """Evaluates the selected checkpoint on validation and, once, on test."""
    results: dict[str, Any] = {
        "dataset": info.flag,
        "size": config.data.size,
        "model": config.model.name,
        "seed": config.seed,
        "best_epoch": meta["best"]["epoch"],
    }
    missing = "the dataset file has no test split"
    if config.data.folds:
        results["cross_validation"] = {"folds": config.data.folds, "fold": config.data.fold}
        missing = "cross-validation does not read the test split"
    report = "test" if splits["test"] is not None else "val"
    scores = {}
    for split in ("val", "test"):
        if splits[split] is None:
            results[split] = None
            results["test_missing"] = missing
            continue
        start, compiled = time.perf_counter(), steps.compile_seconds()
        metrics, probs = evaluate_split(
            steps, inference_params(state), splits[split], config.train.eval_batch_size, info.task
        )
        seconds = time.perf_counter() - start - (steps.compile_seconds() - compiled)
        labels = splits[split][1]
        metrics.update(evaluate.report(labels, probs, info.task, info.label_names))
        metrics["samples_per_second"] = len(probs) / seconds
        results[split], scores[split] = metrics, (labels, probs)
        log(f"best epoch {meta['best']['epoch']}: {split}  {evaluate.describe(metrics)}")
    tag = f"{config.model.name}-seed{config.seed}"
    results.update(report_files(run, info, config.data.size, report, scores, results[report], tag))
    if splits["test"] is None:
        log(f"{missing}: reported validation only")
    return results


def report_files(
    run: workdir_lib.Workdir,
    info: data_lib.DatasetInfo,
    size: int,
    split: str,
    scores: dict[str, tuple[np.ndarray, np.ndarray]],
    metrics: dict,
    tag: str,
) -> dict:
    """Writes the run's `scores.npz` and the evaluator-format CSV of `split`, logs its
    confusion matrix; returns the results' confusion matrix entries."""
    labels, probs = scores[split]
    preds = evaluate.predicted_labels(probs, info.task)
    matrix = evaluate.confusion_matrix(labels, preds, info.n_classes)
    if parallel.is_main_process():
        run.write_scores(scores)
        run.write_predictions_csv(
            evaluate.evaluation_csv_name(info.flag, size, split, metrics, tag), probs
        )
    log(f"confusion matrix ({split}; rows: true {', '.join(info.label_names)}): {matrix}")
    return {
        "confusion_matrix": matrix,
        "confusion_matrix_split": split,
        "label_names": list(info.label_names),
    }


def evaluate_workdir(workdir: str | Path, split: str, output: str | Path | None = None) -> dict:
    """Re-evaluates the best checkpoint of the single run `workdir` on `split` with the
    run's own `config.json`; writes `output` (default `<workdir>/eval_<split>.json`).

    For a cross-validation run, `train` and `val` are the run's fold split.
    """
    run = workdir_lib.Workdir(workdir)
    restored = inference.restore(run.path)
    config = restored.config
    if len(restored.params) > 1:
        raise workdir_lib.WorkdirError(
            f"{run} is an ensemble of {len(restored.params)} members: its results.json "
            f"holds the ensemble's metrics; evaluate one member with --workdir={run.member(0)}"
        )
    mesh = parallel.make_mesh()
    config_lib.check_batch_sizes(config, mesh.size)
    _, path = dataset_file(config)
    if config.data.folds and split != "test":
        images_labels = load_splits(config, path)[split]
    else:
        images_labels = data_lib.load_split(path, config.data.name, config.data.size, split)
    steps = Steps(config, mesh, restored.model)
    metrics, _ = evaluate_split(
        steps, restored.params[0], images_labels, config.train.eval_batch_size, restored.info.task
    )
    result = {"split": split, "best_epoch": restored.best_epoch, **metrics}
    if parallel.is_main_process():
        run.write_json(Path(output) if output else run.eval_path(split), result)
    log(f"{run} best epoch {restored.best_epoch}: {split}  {_format('', metrics)}")
    return result
