"""What the memory reads and writes for one volume (`main.py --mode=explain`).

`explain_volume` runs the model once in eval mode, in its direct formulation with
Flax's layers (`model.kernels="flax"`, which records what it reads), and collects per
step t (one p-thick depth slab) the `Explanation` that `lmttm_jax.figures` draws: the
read weights on the slab's tokens, the head applied to step t's output tokens alone
(`step_logits`), each memory unit's change, and the units read and written. An
ensemble is explained by its member 0.
"""

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tensorboardX import SummaryWriter

from lmttm_jax import evaluate, figures, inference
from lmttm_jax.data.volumes import VolumeError, load_volume
from lmttm_jax.figures import Explanation
from lmttm_jax.inference import Restored
from lmttm_jax.models.recurrent import MemoryClassifier


def _forward(module: MemoryClassifier, x: jax.Array):
    """Logits `[b, C]`, per-step head logits `[b, T, C]` and the initial memory."""
    out = module.encode(module.tokenize(x))  # [b, T, k, c]
    b, t = out.shape[:2]
    logits = module.head(out)["logits"]
    per_step = module.head(out.reshape((b * t, 1) + out.shape[2:]))["logits"]
    return logits, per_step.reshape(b, t, -1), module.initial_memory(b)


def memory_change(trajectory: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """`[T, K, W, c]` memory after each step and `[K, W, c]` before the first ->
    `[T, K]` norms of each unit's change at each step."""
    before = np.concatenate([initial[None], trajectory[:-1]])
    return np.linalg.norm((trajectory - before).reshape(trajectory.shape[:2] + (-1,)), axis=-1)


def read_attention(weights: np.ndarray, n: int) -> np.ndarray:
    """Read weights `[T, (3,) r, W+n]` -> `[T, sqrt(n), sqrt(n)]` summed over the reads
    and read tokens, restricted to the last n entries (the slab's tokens)."""
    side = int(round(n**0.5))
    summed = weights.reshape(weights.shape[0], -1, weights.shape[-1]).sum(axis=1)
    return summed[:, -n:].reshape(-1, side, side)


def explain_volume(run: Restored, volume: np.ndarray, source: str = "") -> Explanation:
    """Explains the prediction of the single model `run` for one prepared volume
    `[S, S, S]` in [0, 1]."""
    spec, name = run.model.spec, run.config.model.name
    dtype = jnp.dtype(run.config.train.compute_dtype)
    params, x = inference.cast((run.params[0], jnp.asarray(volume)[None, ..., None]), dtype)
    model = run.model.clone(spec=dataclasses.replace(spec, kernels="flax"))
    forward = jax.jit(functools.partial(model.apply, method=_forward, mutable=["intermediates"]))
    (logits, per_step, initial), state = forward({"params": params}, x)
    probs = np.asarray(jax.nn.softmax(logits.astype(jnp.float32))[0])
    if any(inference.tta_transforms(run.config)):  # the TTA average: predict's function
        probs = inference.predict_fn(run)(np.asarray(volume, np.float32)[None])[0]
    sown = state["intermediates"]["steps"]
    trajectory = np.asarray(sown["memory"][0][0], np.float32)  # [T, K, W, c] (TTM: K = 1)
    change = memory_change(trajectory, np.asarray(initial[0][0], np.float32))
    n = (volume.shape[1] // spec.patch_size) ** 2
    weights = sown.get("read", {}).get("weights")
    attention = None if weights is None else read_attention(np.asarray(weights[0][0]), n)
    reads, writes = run.model.access_pattern(len(trajectory))
    return Explanation(
        volume=np.asarray(volume, np.float32),
        probs=probs,
        predicted=int(evaluate.predicted_labels(probs[None], run.info.task)[0]),
        label_names=run.info.label_names,
        model_name=name,
        read_learner=spec.read,
        patch_size=spec.patch_size,
        read_tokens=spec.read_tokens,
        attention=attention,
        step_logits=np.asarray(per_step[0], np.float32),
        memory_change=change,
        reads=reads,
        writes=writes,
        source=source,
    )


def true_label(run: Restored, label: str | None) -> int | None:
    """The class index of `label` (a class name, or an index), None when not given."""
    if label is None:
        return None
    names = run.info.label_names
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    raise VolumeError(f"--label={label}: not a class of the model; expected one of {names}")


def explain_file(
    run: Restored,
    input_path: str | Path,
    out: str | Path,
    board: Path | None,
    label: str | None = None,
) -> list[Path]:
    """Explains the one volume file `input_path` with `run` (an ensemble's member 0),
    whose true class is `label` when given: writes the volume figure `out` and
    `<out stem>_memory.png` and adds both to the TensorBoard in `board` (None: none),
    or for an `out` ending in `.gif` the animation of the reading."""
    path = Path(input_path)
    if path.is_dir():
        raise VolumeError(f"{path}: --mode=explain takes one volume file, not a folder")
    if not path.is_file():
        raise FileNotFoundError(f"--input {path} does not exist")
    title = path.name
    if len(run.params) > 1:
        print(
            f"note: an ensemble of {len(run.params)}; explaining member 0 (its own "
            f"probabilities; predict averages all members)",
            flush=True,
        )
        run, title = run.member(0), f"{title} (member 0)"
    volume = load_volume(path, run.size, run.config.data.nifti_geometry)
    explanation = explain_volume(run, volume, source=title)
    explanation.label = true_label(run, label)
    if str(out).lower().endswith(".gif"):
        return [figures.reading_animation(explanation, out)]
    explained = figures.explanation_figure(explanation)
    memory = figures.memory_figure(explanation)
    if board is not None:  # also shown in the run's TensorBoard
        with SummaryWriter(str(board)) as writer:
            for tag, fig in (("explain", explained), ("explain_memory", memory)):
                writer.add_image(f"{tag}/{path.name}", figures.pixels(fig), dataformats="HWC")
    out = Path(out)
    memory_out = out.with_name(f"{out.stem}_memory{out.suffix or '.png'}")
    return [figures.save(explained, out), figures.save(memory, memory_out)]
