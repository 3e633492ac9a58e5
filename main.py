"""Train, evaluate, predict with and explain LMTTM / TTM on MedMNIST 3D or the synthetic set.

python main.py --config=configs/organ.py --workdir=runs/organ
python main.py --mode=eval --workdir=runs/organ --split=test
python main.py --mode=predict --workdir=runs/organ --input=scans/ --output=predictions.csv
python main.py --mode=explain --workdir=runs/organ --input=scan.nii.gz --output=explain.png
python main.py --mode=plot --workdir=runs/organ
python main.py --mode=predict --pretrained=adrenalmnist3d --input=scans/ --output=predictions.csv

Every mode but train reads the run's config from `<workdir>/config.json`; predict and
explain with `--pretrained` use a model shipped in the package (`lmttm_jax.pretrained`).
"""

from absl import app, flags
from ml_collections import config_flags

from lmttm_jax import cli, huge_pages

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/organ.py[:variant] (--mode=train).", lock_config=True
)
flags.DEFINE_string("workdir", None, "The run's directory: config, checkpoints, metrics, results.")
flags.DEFINE_string(
    "pretrained",
    None,
    "predict/explain: a model shipped in the package (adrenalmnist3d) instead of --workdir; "
    "explain then writes explain.png here unless --output says otherwise.",
)
flags.DEFINE_enum("mode", "train", cli.MODES, "train (and resume), eval, predict, explain, plot.")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split for --mode=eval.")
flags.DEFINE_string("input", None, "predict/explain: a .npy/.npz/.nii/.nii.gz file or a folder.")
flags.DEFINE_string(
    "output",
    None,
    "The file to write: eval JSON, predict CSV/JSON (default stdout), explain or plot PNG "
    "(default: in --workdir).",
)
flags.DEFINE_bool("debug", False, "Show tracebacks of user errors too.")
flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process: index of this process.")
flags.DEFINE_integer(
    "host_devices",
    0,
    "CPU only: split the host into this many JAX devices (data parallelism over "
    "the cores; compare with `python -m lmttm_jax.bench "
    "--host_devices=0,N`). 0: one device using every core.",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {argv[1:]}", cli.EXIT_USAGE)
    devices = (FLAGS.host_devices, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    cli.main(
        FLAGS.mode,
        FLAGS.workdir,
        FLAGS.split,
        FLAGS.input,
        FLAGS.output,
        FLAGS.debug,
        devices,
        FLAGS.pretrained,
    )


if __name__ == "__main__":
    huge_pages.restart()  # before anything runs: glibc reads it at start
    app.run(main, flags_parser=cli.parse_flags)
