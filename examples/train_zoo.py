"""Train a classic ImageNet architecture in its CIFAR-10 form (VGG, GoogLeNet, MobileNet v1, ...).

    python examples/train_zoo.py --model vgg11_cifar --quick
    python examples/train_zoo.py --model mobilenet_v1_cifar --epochs 30

Uses the fit loop of ``tinyconv.train`` (tqdm progress, per-epoch metrics.csv, curves.png,
summary.json and an atomic checkpoint in --out; Ctrl-C keeps the last epoch, --resume continues).
The recipe differs from the ResNet paper's default there: these nets have batch norm and no
paper recipe for CIFAR, so SGD with momentum 0.9, weight decay 5e-4 and a cosine learning rate
from 0.05 over the run is used (override with the flags).

--quick is a smoke run that finishes in about a minute whatever the model costs: it times one
training step first, then sizes a training subset for ~18 s of training (2 epochs at batch 16)
and a test subset for ~6 s of scoring, leaving room for loading the data, checkpoints and plots.
Its numbers only show that training runs and the loss moves; they say nothing about what the
architecture reaches.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinyconv
import tinyconv.functional as F
from tinyconv.models import CIFAR_MODELS, CIFAR_ZOO, MODELS
from tinyconv.train import TrainConfig, train

QUICK_TRAIN_S, QUICK_EVAL_S, QUICK_BATCH, QUICK_EPOCHS = 18.0, 6.0, 16, 2


def time_one_step(model_fn, batch):
    """Seconds for one forward + backward of a throwaway model on random data. Kernels compiled in
    an earlier run come from numba's cache; on a cold cache this includes compiling them, which
    only makes --quick more careful."""
    model = model_fn()
    x = tinyconv.Tensor(np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32))
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), np.arange(batch) % 10)
    loss.backward()
    return time.perf_counter() - t0


def quick_sizes(step_s, batch):
    """(training subset, test subset) for QUICK_TRAIN_S of training and QUICK_EVAL_S of scoring."""
    steps_per_epoch = int(np.clip(QUICK_TRAIN_S / QUICK_EPOCHS / step_s, 2, 40))
    # Scoring needs no backward pass: about a third of a training step per image.
    test = int(np.clip(QUICK_EVAL_S / (step_s / batch / 3), 100, 1000)) // 50 * 50
    return steps_per_epoch * batch, test


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=sorted(CIFAR_ZOO) + sorted(CIFAR_MODELS),
                   help="a CIFAR-form network from tinyconv.models")
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute on a subset")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--subset", type=int, default=None, help="train on the first N training images")
    p.add_argument("--test-subset", type=int, default=None, help="score the first N test images")
    p.add_argument("--data", default=None, help="folder containing cifar-10-batches-py/ "
                                                "(default $TINYCONV_DATA)")
    p.add_argument("--out", default=None, help="output folder (default runs/zoo/MODEL[-quick-TIME])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = p.parse_args(argv)

    model_fn = MODELS[args.model]
    model_info = tinyconv.summary(model_fn(), (3, 32, 32), print_table=False)
    print(f"{args.model}: {model_info.total_params:,} parameters, "
          f"{model_info.total_mult_adds / 1e6:.1f} M mult-adds per 32x32 image", file=sys.stderr)

    epochs, batch, subset, test_subset = args.epochs, args.batch_size, args.subset, args.test_subset
    if args.quick:
        step_s = time_one_step(model_fn, QUICK_BATCH)
        epochs, batch = QUICK_EPOCHS, QUICK_BATCH
        quick_train, quick_test = quick_sizes(step_s, batch)
        subset, test_subset = subset or quick_train, test_subset or quick_test
        print(f"--quick: one step of {batch} images takes {step_s:.2f} s here, so {epochs} epochs on "
              f"{subset} training images, scored on {test_subset} test images", file=sys.stderr)
    # Quick runs get a fresh folder each time (the loop refuses to overwrite a checkpoint).
    suffix = time.strftime("-quick-%Y%m%d-%H%M%S") if args.quick else ""
    out = args.out or str(Path("runs", "zoo", args.model + suffix))
    config = TrainConfig(model=args.model, epochs=epochs, batch_size=batch, lr=args.lr, momentum=0.9,
                         weight_decay=args.weight_decay, schedule="cosine", data=args.data, out=out,
                         resume=args.resume, seed=args.seed, subset=subset, test_subset=test_subset)
    t0 = time.perf_counter()
    result = train(config, model_fn=model_fn)
    s = result.summary
    losses = ", ".join(f"{r['train_loss']:.3f}" for r in result.history)
    print(f"\n{args.model}: {result.status} after {result.epoch} epochs "
          f"({result.iteration} steps of {batch}) "
          f"in {time.perf_counter() - t0:.0f} s\n"
          f"  train loss by epoch: {losses}\n"
          f"  train error (last epoch): {s['train_error_pct']:.1f}%   "
          f"test error on {test_subset or 10000} images: {s['test_error_all_rows_pct']:.1f}%   "
          f"({s['train_images_per_s']:.1f} train img/s)\n"
          f"  files: {out}/metrics.csv, curves.png, summary.json, checkpoint.npz")
    return 0 if result.status == "complete" else 130


if __name__ == "__main__":
    sys.exit(main())
