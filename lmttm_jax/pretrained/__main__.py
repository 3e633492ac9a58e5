"""The shipped models: list them, or export a finished run as one.

  python -m lmttm_jax.pretrained list
  python -m lmttm_jax.pretrained export --workdir=runs/adrenal-recipe --name=adrenalmnist3d \\
      --command="python main.py --config=configs/adrenal.py:recipe=cpu ..." \\
      --machine="2-core CPU" --wall_time="18 min 26 s"

`export` writes `lmttm_jax/pretrained/<name>/` (or `--out`); the command, machine and
wall time are recorded as given, the figures come from the run's `results.json`.
"""

import sys
from pathlib import Path

from absl import app, flags, logging

from lmttm_jax import config_check, pretrained
from lmttm_jax.workdir import WorkdirError

flags.DEFINE_string("workdir", None, "export: the finished run (single or ensemble).")
flags.DEFINE_string("name", None, "export: the model's name (--pretrained=NAME).")
flags.DEFINE_string("out", None, "export: the folder to write (default: the package's).")
flags.DEFINE_string("command", None, "export: the command that trained the run.")
flags.DEFINE_string("machine", None, "export: the machine it was trained on.")
flags.DEFINE_string("wall_time", None, "export: the training's wall time.")

USER_ERRORS = (config_check.ConfigError, WorkdirError, OSError)


def main(argv: list[str]) -> None:
    FLAGS = flags.FLAGS
    if argv[1:] == ["list"]:
        print(pretrained.describe(pretrained.available()) or "no pretrained model")
        return
    if argv[1:] != ["export"]:
        raise app.UsageError(f"expected `list` or `export`, got {argv[1:]}")
    if not FLAGS.workdir or not FLAGS.name:
        raise app.UsageError("export needs --workdir and --name")
    logging.set_verbosity(logging.WARNING)
    out = Path(FLAGS.out) if FLAGS.out else pretrained.MODELS_DIR / FLAGS.name
    provenance = {"command": FLAGS.command, "machine": FLAGS.machine, "wall_time": FLAGS.wall_time}
    try:
        path = pretrained.export(FLAGS.workdir, out, provenance, FLAGS.name)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    size = sum(p.stat().st_size for p in path.iterdir())
    print(f"wrote {path} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    app.run(main)
