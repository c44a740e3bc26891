"""``python -m tinyconv.train``: train a CIFAR-10 network, by default with the ResNet paper's recipe."""
from __future__ import annotations

import argparse
import os
import sys

from tinyconv.train.config import SCHEDULES, ConfigError, TrainConfig

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130  # 130: the shell's code for a run stopped by Ctrl-C


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from tinyconv.models import CIFAR_MODELS

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m tinyconv.train",
        description="Train a CIFAR-10 network (He et al. 2015, sec. 4.2). The defaults are the paper's "
                    "recipe: batch 128, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 32k "
                    "and 48k iterations, 64k iterations, 4-pixel pad + random crop + flip.",
        epilog="Writes OUT/checkpoint.npz (every epoch, atomically), OUT/metrics.csv, OUT/curves.png and "
               "OUT/summary.json. Test error is reported on rows 0-999 of the test set (exact images; the "
               "headline) and on all rows (rows 1000-9999 of the shared copy are JPEG-decoded). Ctrl-C "
               "keeps the last completed epoch; continue with the same command plus --resume.")
    p.add_argument("--model", default=d.model, choices=sorted(CIFAR_MODELS), help="network (default %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs to train; the paper schedule's lr drops move to 50%% and 75%% of the run "
                        "(default: the paper's 64k iterations, about 164 epochs on 50k images)")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="default %(default)s")
    p.add_argument("--lr", type=float, default=d.lr, help="initial (paper, cosine) or peak (onecycle) "
                                                         "learning rate (default %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum,
                   help="SGD momentum (default %(default)s; onecycle cycles it between 0.85 and 0.95)")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="paper: lr/10 at 50%% and 75%% of the run (32k, 48k of 64k); cosine: to 0; "
                        "onecycle: warm up to --lr then anneal. Stepped every iteration. (default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="default %(default)s")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder containing cifar-10-batches-py/ (default: $TINYCONV_DATA)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/MODEL)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (same settings required)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds weights, shuffling and crops "
                                                            "(default %(default)s)")
    p.add_argument("--val-split", type=_nonnegative_int, default=d.val_split, metavar="N",
                   help="hold out the LAST N training images (exact pixels) as a validation set; "
                        "the paper's split is 5000 (default %(default)s: none)")
    p.add_argument("--workers", type=_nonnegative_int, default=d.workers, metavar="N",
                   help="batches prepared ahead by ONE background thread (shuffle, crop, flip, "
                        "normalise) while the model trains; 0 prepares them in the training thread. "
                        "It is a prefetch depth, not a number of processes (default %(default)s)")
    p.add_argument("--subset", type=_positive_int, default=None, metavar="N",
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--test-subset", type=_positive_int, default=None, metavar="N",
                   help="score only the first N test images (1000 = the exact ones; default: all)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="turn off the pad-4 random crop and horizontal flip")
    p.add_argument("--eval-every", type=_positive_int, default=d.eval_every, metavar="K",
                   help="score the test/validation sets every K epochs and after the last (default %(default)s)")
    p.add_argument("--device", default=d.device, metavar="DEV",
                   help="cpu, cuda or cuda:N (CUDA needs CuPy: pip install 'tinyconv[cuda]'; "
                        "default %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is drawn only when stderr is a terminal; one line per "
                        "epoch is printed either way)")
    return p


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 done, 1 error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    from tinyconv.train.checkpoint import CheckpointError
    from tinyconv.train.experiment import train

    try:
        result = train(TrainConfig(**vars(args)))
    except (ConfigError, CheckpointError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    s = result.summary
    if s["test_error_rows_0_999_pct"] is not None:
        print(f"done: {s['model']} test error {s['test_error_rows_0_999_pct']:.2f}% on rows 0-999 "
              f"(all rows, JPEG-affected: {s['test_error_all_rows_pct']:.2f}%); files in "
              f"{os.path.dirname(s['checkpoint'])}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
