"""Train and evaluate LMTTM / TTM on MedMNIST 3D or the synthetic set.

python main.py --config=configs/organ.py --workdir=runs/organ
python main.py --config=configs/organ.py --workdir=runs/organ --mode=eval --split=test
"""

from absl import app, flags, logging
from ml_collections import config_flags

from lmttm_jax import parallel, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/organ.py[:variant].")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and resume), or re-evaluate.")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split for --mode=eval.")
flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process: index of this process.")
flags.mark_flags_as_required(["config"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    config = FLAGS.config
    workdir = FLAGS.workdir or f"runs/{config.data.name}-{config.model.name}-seed{config.seed}"
    if FLAGS.mode == "train":
        train.train_and_evaluate(config, workdir)
    else:
        train.evaluate_workdir(config, workdir, FLAGS.split)


if __name__ == "__main__":
    app.run(main)
