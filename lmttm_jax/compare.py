"""Two finished runs scored on the same split: is the difference real?

  python -m lmttm_jax.compare RUN_A RUN_B [--split=test] [--samples=2000] [--json=out.json]

Reads each run's `scores.npz` (its labels and probabilities, written when it finished)
and reports, for A - B: the AUC difference with DeLong's 95 % interval and p-value
(binary tasks), and paired bootstrap intervals (the samples resampled jointly) of the
AUC and ACC differences, MedMNIST's definitions (`lmttm_jax.stats`). The runs must
hold the same samples: the same dataset split in the same order (a 28^3 and a 64^3
run of one dataset qualify; two cross-validation runs of the same fold too).
"""

import json
from pathlib import Path

from absl import app, flags

from lmttm_jax import errors, evaluate, stats
from lmttm_jax.errors import UsageError
from lmttm_jax.workdir import Workdir

FLAGS = flags.FLAGS


def compare(a: Path, b: Path, split: str | None = None, samples: int = 2000) -> dict:
    """The comparison of runs `a` and `b` on `split` (default: the split each reports)."""
    runs = [Workdir(a), Workdir(b)]
    split = split or runs[0].read_results()["confusion_matrix_split"]
    scores = []
    for run in runs:
        found = run.read_scores()
        if split not in found:
            raise UsageError(f"{run.scores_path} has no {split} split (it has {sorted(found)})")
        scores.append(found[split])
    (labels, p), (other, q) = scores
    if len(labels) != len(other) or (labels != other).any():
        raise UsageError(f"{a} and {b} were not scored on the same {split} samples")
    task = "binary-class" if p.shape[1] == 2 else "multi-class"
    out: dict = {"split": split, "samples": len(labels), "a": str(a), "b": str(b)}
    for name, probs in (("a", p), ("b", q)):
        out[name + "_metrics"] = evaluate.medmnist_metrics(labels, probs, task)
    for metric in ("auc", "acc"):

        def score(y, probs, metric=metric):
            return evaluate.medmnist_metrics(y, probs, task)[metric]

        out[f"{metric}_bootstrap"] = stats.paired_bootstrap(labels, p, q, score, samples)
    if task == "binary-class":
        out["auc_delong"] = stats.delong(labels, p[:, 1], q[:, 1])
    return out


def text(result: dict) -> str:
    """The comparison in a few lines."""
    a, b = result["a_metrics"], result["b_metrics"]
    lines = [
        f"{result['split']}, {result['samples']} samples: A {result['a']}  B {result['b']}",
        f"A: AUC {a['auc']:.4f}  ACC {a['acc']:.4f}    B: AUC {b['auc']:.4f}  ACC {b['acc']:.4f}",
    ]
    if "auc_delong" in result:
        d = result["auc_delong"]
        lines.append(
            f"AUC A - B {d['diff']:+.4f}, DeLong 95% [{d['low']:+.4f}, {d['high']:+.4f}], "
            f"z {d['z']:.2f}, p {d['p']:.3g}"
        )
    for metric in ("auc", "acc"):
        r = result[f"{metric}_bootstrap"]
        lines.append(
            f"{metric.upper()} A - B {r['diff']:+.4f}, paired bootstrap 95% "
            f"[{r['low']:+.4f}, {r['high']:+.4f}] ({r['samples']} resamples)"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    with errors.reported():
        if len(argv) != 3:
            raise UsageError("expected two run directories: compare RUN_A RUN_B")
        result = compare(Path(argv[1]), Path(argv[2]), FLAGS.split, FLAGS.samples)
        print(text(result))
        if FLAGS.json:
            Path(FLAGS.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    flags.DEFINE_enum("split", None, ["val", "test"], "The split (default: the one reported).")
    flags.DEFINE_integer("samples", 2000, "Bootstrap resamples.")
    flags.DEFINE_string("json", None, "Also write the comparison to this JSON file.")
    app.run(main)
