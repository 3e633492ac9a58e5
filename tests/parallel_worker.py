"""Trains the tiny synthetic setup in one process of a (possibly) multi-process run.

  python tests/parallel_worker.py WORKDIR DATA_ROOT EPOCHS BATCH [COORDINATOR NPROC PID]

Used by tests/test_parallel.py in subprocesses (device counts are set per process
with XLA_FLAGS=--xla_force_host_platform_device_count=N). Prints RESULTS <json>.
"""

import json
import sys

from lmttm_jax import parallel


def main(argv: list[str]) -> None:
    workdir, root, epochs, batch = argv[1], argv[2], int(argv[3]), int(argv[4])
    if len(argv) > 5:
        parallel.initialize(argv[5], int(argv[6]), int(argv[7]))
    from configs import synthetic
    from lmttm_jax import train
    from tests.tiny import TINY_MODEL

    config = synthetic.get_config()
    config.data.root = root
    config.model.update(TINY_MODEL, dropout=0.1)
    config.data.flip = True
    config.train.update(
        epochs=epochs, batch_size=batch, eval_batch_size=batch, learning_rate=3e-3, warmup_epochs=0
    )
    results = train.train_and_evaluate(config, workdir)
    print("RESULTS " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main(sys.argv)
