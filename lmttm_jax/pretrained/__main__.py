"""The shipped models: list them, write example volumes for them, or export a finished
run as one.

  python -m lmttm_jax.pretrained list
  python -m lmttm_jax.pretrained examples --name=adrenalmnist3d --out=scans [--count=8]
  python -m lmttm_jax.pretrained export --workdir=runs/adrenal-recipe --name=adrenalmnist3d \\
      --command="python main.py --config=configs/adrenal.py:recipe=cpu ..." \\
      --machine="2-core CPU" --wall_time="18 min 26 s"

`export` writes `lmttm_jax/pretrained/<name>/` (or `--out`); the command, machine and
wall time are recorded as given, the figures come from the run's `results.json`.
"""

from pathlib import Path

from absl import app, flags, logging

from lmttm_jax import errors, inference, pretrained

flags.DEFINE_string("workdir", None, "export: the finished run (single or ensemble).")
flags.DEFINE_string("name", None, "export, examples: the model's name (--pretrained=NAME).")
flags.DEFINE_string("out", None, "export (default: the package's), examples: the folder to write.")
flags.DEFINE_string("command", None, "export: the command that trained the run.")
flags.DEFINE_string("machine", None, "export: the machine it was trained on.")
flags.DEFINE_string("wall_time", None, "export: the training's wall time.")
flags.DEFINE_integer("count", 8, "examples: how many validation volumes.")
flags.DEFINE_string("data_root", None, "examples: the folder of the dataset file.")


def main(argv: list[str]) -> None:
    FLAGS = flags.FLAGS
    if argv[1:] == ["list"]:
        print(pretrained.describe(inference.available()) or "no pretrained model")
        return
    if argv[1:] == ["examples"]:
        if not FLAGS.name or not FLAGS.out:
            raise app.UsageError("examples needs --name and --out")
        with errors.reported():
            for path in pretrained.examples(
                FLAGS.name, Path(FLAGS.out), FLAGS.count, FLAGS.data_root
            ):
                print(f"wrote {path}")
        return
    if argv[1:] != ["export"]:
        raise app.UsageError(f"expected `list`, `examples` or `export`, got {argv[1:]}")
    if not FLAGS.workdir or not FLAGS.name:
        raise app.UsageError("export needs --workdir and --name")
    logging.set_verbosity(logging.WARNING)
    out = Path(FLAGS.out) if FLAGS.out else inference.SHIPPED / FLAGS.name
    provenance = {"command": FLAGS.command, "machine": FLAGS.machine, "wall_time": FLAGS.wall_time}
    with errors.reported():
        path = pretrained.export(FLAGS.workdir, out, provenance, FLAGS.name)
    size = sum(p.stat().st_size for p in path.iterdir())
    print(f"wrote {path} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    app.run(main)
