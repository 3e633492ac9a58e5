"""Figures (matplotlib, Agg, no pyplot state): explanations and training curves.

Every figure has a fixed pixel size (`*_SIZE`, width x height); `save` writes a PNG,
`pixels` renders it for TensorBoard. `Explanation` (computed by `lmttm_jax.explain`)
is what the explanation figures draw.
"""

import dataclasses
import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import precision_recall_curve, roc_curve
from tensorboardX import SummaryWriter

from lmttm_jax import evaluate
from lmttm_jax.workdir import Workdir

matplotlib.use("Agg")

DPI = 100
EXPLAIN_SIZE = (1200, 900)
MEMORY_SIZE = (1000, 600)
CURVES_SIZE = (1200, 400)
ROC_SIZE = (1000, 450)
HEAT = matplotlib.colormaps["magma"]
ANIMATION_SIZE = (900, 450)
NO_WEIGHTS = "read learner {learner!r} sows no read weights: no attention heat map"


@dataclasses.dataclass
class Explanation:
    """One volume's prediction and what the memory did at each of its T steps."""

    volume: np.ndarray  # [S, S, S] the model input in [0, 1]
    probs: np.ndarray  # [C]
    predicted: int
    label_names: tuple[str, ...]
    model_name: str
    read_learner: str
    patch_size: int
    read_tokens: int  # r, tokens each read produces
    attention: np.ndarray | None  # [T, S/p, S/p], None for tl_mha reads
    step_logits: np.ndarray  # [T, C]
    memory_change: np.ndarray  # [T, K]
    reads: np.ndarray  # [T, 3] unit indices (c, c-1, c+1)
    writes: np.ndarray  # [T]
    source: str = ""
    label: int | None = None  # the true class, when the user gives it

    @property
    def steps(self) -> int:
        return len(self.step_logits)

    @property
    def num_units(self) -> int:
        return self.memory_change.shape[1]

    def slab_slices(self) -> np.ndarray:
        """Depth index of the middle slice of each step's p-thick slab: `[T]`."""
        return np.arange(self.steps) * self.patch_size + self.patch_size // 2

    def attention_maps(self) -> np.ndarray | None:
        """`attention` upsampled to the slice size `[T, S, S]` (each token covers p x p
        voxels; the voxels past the last whole patch repeat the edge)."""
        if self.attention is None:
            return None
        p, size = self.patch_size, self.volume.shape[1]
        up = np.repeat(np.repeat(self.attention, p, axis=1), p, axis=2)
        pad = size - up.shape[1]
        return np.pad(up, ((0, 0), (0, pad), (0, pad)), mode="edge") if pad else up


def _figure(size: tuple[int, int]) -> Figure:
    return Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)


def save(fig: Figure, out: str | Path) -> Path:
    """Writes `fig` as the PNG `out` (folders created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out


# ----------------------------------------------------------------------------- explain


def _heat(ex: Explanation) -> tuple[np.ndarray | None, Normalize | None]:
    """The attention maps `[T, S, S]` and their colour scale, the 50th to 99th
    percentile (what stands out, not the floor); (None, None) without read weights."""
    maps = ex.attention_maps()
    if maps is None:
        return None, None
    low, high = np.percentile(maps, [50, 99])
    return maps, Normalize(float(low), float(max(high, low + 1e-12)))


def _slab(ax, ex: Explanation, t: int, maps: np.ndarray | None, norm: Normalize | None) -> int:
    """Draws step `t`'s middle slab slice with its read attention over it, in a
    perceptual colormap at most half opaque (the anatomy stays visible); its depth."""
    depth = min(ex.slab_slices()[t], len(ex.volume) - 1)
    ax.imshow(ex.volume[depth], cmap="gray", vmin=0, vmax=1)
    if maps is not None:
        level = np.clip(norm(maps[t]), 0.0, 1.0)
        rgba = HEAT(level)
        rgba[..., 3] = 0.5 * level
        ax.imshow(rgba)
    return depth


def _verdict(ex: Explanation) -> str:
    """`true X, predicted Y (p=...)`, or without a known label `predicted Y (p=...)`."""
    predicted = f"predicted {ex.label_names[ex.predicted]} (p={ex.probs[ex.predicted]:.3f})"
    if ex.label is None:
        return predicted
    mark = "right" if ex.label == ex.predicted else "WRONG"
    return f"true {ex.label_names[ex.label]}, {predicted}: {mark}"


def _montage(fig: Figure, grid, ex: Explanation) -> None:
    """One panel per step: middle slice of the slab, attention overlay, contribution."""
    cols = math.ceil(math.sqrt(ex.steps))
    rows = math.ceil(ex.steps / cols)
    sub = grid.subgridspec(rows, cols, wspace=0.05, hspace=0.25)
    maps, norm = _heat(ex)
    contribution = ex.step_logits[:, ex.predicted]
    axes = []
    for t, depth in enumerate(ex.slab_slices()):
        ax = fig.add_subplot(sub[t // cols, t % cols])
        _slab(ax, ex, t, maps, norm)
        ax.set_title(f"step {t} (z={depth})  {contribution[t]:+.2f}", fontsize=8)
        ax.set(xticks=[], yticks=[])
        axes.append(ax)
    if maps is not None:
        mappable = ScalarMappable(norm, HEAT)
        bar = fig.colorbar(mappable, ax=axes, location="left", shrink=0.6, pad=0.03)
        reads = 3 if ex.model_name == "lmttm" else 1
        bar.set_label(
            f"read weight per slab token, summed over {reads} read(s) x {ex.read_tokens} read "
            f"tokens\n(no unit; each read token's softmax weights sum to 1 over the memory "
            f"and slab tokens)",
            fontsize=8,
        )
    else:
        fig.text(0.02, 0.02, NO_WEIGHTS.format(learner=ex.read_learner), fontsize=10, color="red")


def _probabilities(ax, ex: Explanation) -> None:
    y = np.arange(len(ex.probs))
    colors = ["tab:red" if i == ex.predicted else "tab:gray" for i in y]
    ax.barh(y, ex.probs, color=colors)
    ax.set_yticks(y, [n[:18] for n in ex.label_names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title("predicted probabilities", fontsize=10)
    for i, p in enumerate(ex.probs):
        ax.text(min(p + 0.02, 0.8), i, f"{p:.3f}", va="center", fontsize=8)


def _contributions(ax, ex: Explanation) -> None:
    values = ex.step_logits[:, ex.predicted]
    ax.bar(np.arange(ex.steps), values, color=np.where(values >= 0, "tab:blue", "tab:orange"))
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("step (depth slab)", fontsize=8)
    ax.set_title(
        f"'{ex.label_names[ex.predicted][:18]}' logit of the head\non each step's output alone",
        fontsize=10,
    )


def pixels(fig: Figure) -> np.ndarray:
    """`fig` rendered: RGB `[height, width, 3]` uint8 (for TensorBoard images)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def explanation_figure(ex: Explanation) -> Figure:
    """The volume montage with read attention, step contributions and probabilities."""
    fig = _figure(EXPLAIN_SIZE)
    grid = fig.add_gridspec(2, 2, width_ratios=(2.2, 1), left=0.1, right=0.97, wspace=0.35)
    _montage(fig, grid[:, 0], ex)
    _probabilities(fig.add_subplot(grid[0, 1]), ex)
    _contributions(fig.add_subplot(grid[1, 1]), ex)
    fig.suptitle(
        f"{ex.source}: {_verdict(ex)}  [{ex.model_name}, {ex.steps} steps of "
        f"{ex.patch_size}-voxel slabs; read attention over each slab]",
        fontsize=11,
    )
    return fig


def _ring(ax, ex: Explanation, t: int) -> None:
    """The K units on a circle: current unit dark, its read neighbours light, the unit
    written at step `t` outlined in red."""
    k = ex.num_units
    angles = np.pi / 2 - 2 * np.pi * np.arange(k) / k
    read = set(ex.reads[t].tolist())
    for unit, angle in enumerate(angles):
        color = "#3182bd" if unit == ex.reads[t][0] else "#9ecae1" if unit in read else "#f2f2f2"
        edge = "tab:red" if unit == ex.writes[t] else "gray"
        x, y = np.cos(angle), np.sin(angle)
        ax.add_patch(Circle((x, y), 0.3, facecolor=color, edgecolor=edge, lw=3))
        ax.text(x, y, f"unit {unit}", ha="center", va="center", fontsize=8)
    ax.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), aspect="equal")
    ax.axis("off")
    ax.set_title("ring: read (blue; dark = current), written (red)", fontsize=9)


def reading_animation(ex: Explanation, out: str | Path, seconds_per_step: float = 0.8) -> Path:
    """The model reading the volume: one GIF frame per step (`out`, a `.gif`)."""
    fig = _figure(ANIMATION_SIZE)
    left, right = fig.subplots(1, 2)
    (maps, norm), contribution = _heat(ex), ex.step_logits[:, ex.predicted]

    def frame(t: int) -> None:
        left.clear()
        right.clear()
        depth = _slab(left, ex, t, maps, norm)
        left.set_title(f"step {t} (z={depth}): contribution {contribution[t]:+.2f}", fontsize=9)
        left.axis("off")
        if ex.model_name == "lmttm":
            _ring(right, ex, t)
        else:
            right.axis("off")
            right.text(0.5, 0.5, "TTM: one memory block,\nread and written every step",
                       ha="center", va="center")  # fmt: skip
        fig.suptitle(f"{ex.source}: {_verdict(ex)}", fontsize=10)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    animation = FuncAnimation(fig, frame, frames=ex.steps)
    animation.save(out, writer=PillowWriter(fps=1 / seconds_per_step), dpi=DPI)
    return out


# ----------------------------------------------------------------------------- memory


def _access(ax, ex: Explanation) -> None:
    """A `[K, T]` grid: the current unit c dark, a read neighbour light, each cell
    labelled with its reads' names and W where written."""
    grid = np.zeros((ex.num_units, ex.steps), int)  # 2 = current unit, 1 = neighbour
    text = np.full((ex.num_units, ex.steps), "", dtype=object)
    per_step = ex.reads.shape[1]
    names = ("c", "c-1", "c+1")[:per_step] if ex.model_name == "lmttm" else ("R",) * per_step
    for t in range(ex.steps):
        for name, unit in zip(names, ex.reads[t], strict=True):
            grid[unit, t] = max(grid[unit, t], 2 if name in ("c", "R") else 1)
            if name not in text[unit, t].split("/"):
                text[unit, t] = "/".join(filter(None, [text[unit, t], name]))
        text[ex.writes[t], t] += "\nW"
    cmap = ListedColormap(["#f2f2f2", "#9ecae1", "#3182bd"])
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=2, aspect="auto")
    for (k, t), label in np.ndenumerate(text):
        ax.text(t, k, label, ha="center", va="center", fontsize=7)
    ax.set_yticks(range(ex.num_units), [f"unit {k}" for k in range(ex.num_units)], fontsize=8)
    ax.set_xticks(range(ex.steps))
    reads = "c = t mod K, c-1, c+1" if ex.model_name == "lmttm" else "R: the one block"
    ax.set_title(f"units read ({reads}; dark = current) and written (W)", fontsize=10)


def _change(fig: Figure, ax, ex: Explanation) -> None:
    image = ax.imshow(ex.memory_change.T, cmap="viridis", aspect="auto")
    ax.set_yticks(range(ex.num_units), [f"unit {k}" for k in range(ex.num_units)], fontsize=8)
    ax.set_xticks(range(ex.steps))
    ax.set_xlabel("step t")
    ax.set_title("||M_t - M_(t-1)|| per unit (memory change at each step)", fontsize=10)
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("L2 norm of the change\n(memory activations, no unit)", fontsize=8)


def memory_figure(ex: Explanation) -> Figure:
    """K x T grids: units read/written at each step, and each unit's change norm."""
    fig = _figure(MEMORY_SIZE)
    grid = fig.add_gridspec(2, 1, hspace=0.45, left=0.1, right=0.98)
    _access(fig.add_subplot(grid[0]), ex)
    _change(fig, fig.add_subplot(grid[1]), ex)
    kind = f"LMTTM, K={ex.num_units} units" if ex.model_name == "lmttm" else "TTM, one block"
    fig.suptitle(f"{ex.source}: memory over {ex.steps} steps ({kind}); {_verdict(ex)}", fontsize=11)
    if ex.attention is None:
        fig.text(0.01, 0.01, NO_WEIGHTS.format(learner=ex.read_learner), fontsize=8, color="red")
    return fig


# ----------------------------------------------------------------------------- curves


def _value(row: dict, key: str, default: float) -> float:
    return default if row.get(key) is None else float(row[key])


def _series(rows: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)


def curves_figure(rows: list[dict], title: str = "") -> Figure:
    """Loss (train, val), val ACC/AUC and learning rate per epoch; best epoch dashed."""
    fig = _figure(CURVES_SIZE)
    axes = fig.subplots(1, 3)
    epochs = _series(rows, "epoch")
    best = None
    for row in rows:
        val = {"auc": _value(row, "val_auc", math.nan), "acc": _value(row, "val_acc", 0.0)}
        if best is None or evaluate.is_better(val, best[1]):
            best = (row["epoch"], val)
    panels = (
        ("loss", ("train_loss", "val_loss")),
        ("validation", ("val_acc", "val_auc")),
        ("learning rate", ("learning_rate",)),
    )
    for ax, (name, keys) in zip(axes, panels, strict=True):
        for key in keys:
            ax.plot(epochs, _series(rows, key), marker="o", markersize=3, label=key)
        ax.axvline(best[0], color="gray", linestyle="--", linewidth=0.8)
        ax.set(xlabel="epoch", xlim=(epochs[0] - 0.5, epochs[-1] + 0.5))  # even for one epoch
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8)
    low, high = axes[1].get_ylim()
    axes[1].set_ylim(max(low, -0.02), min(high, 1.02))  # ACC and AUC lie in [0, 1]
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    skipped = int(np.nansum(_series(rows, "skipped_steps")))
    note = f"; {skipped} non-finite steps skipped" if skipped else ""
    fig.suptitle(f"{title}  (best epoch {best[0]}, dashed){note}", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.85, wspace=0.25)
    return fig


def roc_figure(labels: np.ndarray, probs: np.ndarray, names: tuple[str, ...], title: str) -> Figure:
    """ROC (left) and precision-recall (right) curves: of class 1 for two classes, one
    per class (one-vs-rest) for more; a dot marks MedMNIST's decision rule."""
    fig = _figure(ROC_SIZE)
    roc, pr = fig.subplots(1, 2)
    task = "binary-class" if len(names) == 2 else "multi-class"
    preds = evaluate.predicted_labels(probs, task)
    for c in [1] if task == "binary-class" else range(len(names)):
        positive = labels == c
        if positive.all() or not positive.any():
            continue  # a curve needs both kinds of sample
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        precision, recall, _ = precision_recall_curve(positive, probs[:, c])
        (line,) = roc.plot(fpr, tpr, label=names[c])
        pr.plot(recall, precision, color=line.get_color(), label=names[c])
        hit = preds == c
        sens, fall = hit[positive].mean(), hit[~positive].mean()
        roc.plot([fall], [sens], "o", color=line.get_color())
        if hit.any():
            pr.plot([sens], [positive[hit].mean()], "o", color=line.get_color())
    roc.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=0.8)
    for ax, (x, y) in ((roc, ("1 - specificity", "sensitivity")), (pr, ("recall", "precision"))):
        ax.set(xlabel=x, ylabel=y, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
    roc.set_title("ROC", fontsize=10)
    pr.set_title("precision-recall", fontsize=10)
    fig.suptitle(f"{title}  (dots: the decision rule of ACC)", fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.85, wspace=0.25)
    return fig


def plot_workdir(workdir: str | Path, output: str | Path | None = None) -> list[Path]:
    """`--mode=plot` (and the end of training): the training curves of the run's
    metrics.jsonl (`output`, default `<workdir>/curves.png`) and the ROC and
    precision-recall curves of its reported split (`roc.png` beside it), whichever the
    run has; both also as images of the run's TensorBoard (tags `curves`, `roc`)."""
    run = Workdir(workdir)
    out = Path(output or run.curves_path)
    figures, rows = {}, run.read_metrics()
    if rows:
        figures[out] = ("curves", curves_figure(rows, title=str(workdir)))
    if run.scores_path.is_file():
        results = run.read_results()
        split = results["confusion_matrix_split"]
        labels, probs = run.read_scores()[split]
        names = results.get("label_names") or tuple(str(c) for c in range(probs.shape[1]))
        roc = roc_figure(labels, probs, tuple(names), f"{workdir} ({split})")
        figures[out.with_name("roc.png")] = ("roc", roc)
    if not figures:
        raise FileNotFoundError(f"{run.metrics_path} has no epoch yet: train the run first")
    with SummaryWriter(str(run.path)) as board:
        for tag, fig in figures.values():
            board.add_image(tag, pixels(fig), rows[-1]["epoch"] if rows else 0, dataformats="HWC")
    return [save(fig, path) for path, (_, fig) in figures.items()]
