"""Plumbing shared by the lecture-architecture examples (multitask, dag, recurrent_cnn, two_stream,
siamese, multiscale, devise): command line, real CIFAR-10 loading, mini-batches, the epoch loop
with tqdm progress, metrics files (metrics.csv, metrics.json, summary.json) and line plots.

Every example runs for real by default (a few epochs on a slice of the CIFAR-10 training set,
minutes on a 2-core CPU) and in under a minute with ``--quick`` (a small subset, few steps). The
test images are the first rows of the CIFAR-10 test batch (rows 0-999 are the exact originals in
the shared copy; see its README).
"""
import argparse
import csv
import io
import json
import time
from pathlib import Path

import numpy as np

import tinyconv
from tinyconv import optim
from tinyconv.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD
from tinyconv.train.metrics import write_atomic

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def make_parser(name, doc, *, epochs, batch_size, lr, train_subset, test_subset=1000,
                quick_train=512, quick_test=200):
    """An ArgumentParser with the options every example shares; defaults are the real run's.

    ``--quick`` replaces epochs / subsets by 1 epoch on ``quick_train`` images, tested on
    ``quick_test`` (unless those options are given explicitly).
    """
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0], epilog=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="folder containing cifar-10-batches-py/ (default: $TINYCONV_DATA)")
    p.add_argument("--out", type=Path, default=Path("runs") / name, help=f"output folder (default runs/{name})")
    p.add_argument("--quick", action="store_true", help="a run of under a minute: small subset, 1 epoch")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (Adam, cosine decay; default {lr})")
    p.add_argument("--train-subset", type=int, default=None,
                   help=f"training images used, the first N of data_batch_1..5 (default {train_subset})")
    p.add_argument("--test-subset", type=int, default=None,
                   help=f"test images, rows 0..N-1 of test_batch (default {test_subset})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.set_defaults(_defaults=dict(epochs=epochs, train_subset=train_subset, test_subset=test_subset),
                   _quick=dict(epochs=1, train_subset=quick_train, test_subset=quick_test))
    return p


def finish_args(args):
    """Fill the options left unset from the real-run or the --quick defaults; seed the RNGs."""
    chosen = args._quick if args.quick else args._defaults
    for key, value in chosen.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    del args._quick, args._defaults
    tinyconv.random.manual_seed(args.seed)
    args.rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


class Data:
    """uint8 images and int64 labels of the train slice and the test slice, plus ``normalize``."""

    def __init__(self, args):
        t = time.time()
        train = CIFAR10(args.data, train=True)
        test = CIFAR10(args.data, train=False)
        self.train_images = train.data[:args.train_subset]
        self.train_labels = train.targets[:args.train_subset]
        self.test_images = test.data[:args.test_subset]
        self.test_labels = test.targets[:args.test_subset]
        print(f"CIFAR-10 from {train.folder}: {len(self.train_labels)} training and "
              f"{len(self.test_labels)} test images ({time.time() - t:.1f} s)", flush=True)

    @staticmethod
    def normalize(images):
        """uint8 (N, 3, H, W) -> float32 (x / 255 - mean) / std with the CIFAR-10 channel statistics."""
        mean = np.asarray(CIFAR10_MEAN, np.float32)[:, None, None]
        std = np.asarray(CIFAR10_STD, np.float32)[:, None, None]
        return ((np.asarray(images, np.float32) / 255.0 - mean) / std).astype(np.float32)


def minibatches(n, batch_size, rng=None, drop_last=True):
    """Index arrays of ``batch_size`` (shuffled when ``rng`` is given; the last partial batch is
    dropped when ``drop_last`` and at least one full batch exists)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def progress(iterable, args, desc, total=None):
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, total=total, disable=args.no_progress, leave=False,
                dynamic_ncols=True, mininterval=1.0)


def adam_cosine(params, args, total_steps):
    """Adam at ``args.lr`` with the learning rate decayed to 0 by a cosine over ``total_steps``."""
    opt = optim.Adam(params, lr=args.lr)
    return opt, optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))


def fit(args, run, train_step, evaluate, n_train, batch_size=None, epochs=None, tag=""):
    """The epoch loop: ``train_step(indices) -> {name: float}`` on each shuffled mini-batch,
    ``evaluate() -> {name: float}`` after each epoch; one history row per epoch (train_* means of
    the step values, then the evaluation), logged through ``run``. Returns the last row."""
    batch_size = batch_size or args.batch_size
    epochs = epochs or args.epochs
    row = None
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        sums, count = {}, 0
        batches = minibatches(n_train, batch_size, args.rng)
        bar = progress(batches, args, f"{tag}epoch {epoch}/{epochs}")
        for idx in bar:
            stats = train_step(idx)
            count += 1
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix({k: f"{sums[k] / count:.3f}" for k in list(sums)[:3]})
        bar.close()
        train_time = time.time() - t0
        row = {"epoch": epoch, **({"run": tag.strip(": ")} if tag else {}),
               **{f"train_{k}": v / max(count, 1) for k, v in sums.items()}}
        row.update(evaluate())
        row["epoch_time_s"] = time.time() - t0
        row["images_per_s"] = count * batch_size / max(train_time, 1e-9)
        run.log(row)
    return row


class Run:
    """Collects history rows and writes ``metrics.csv`` / ``metrics.json`` after every epoch and
    ``summary.json`` at the end, all atomically, into ``out``."""

    def __init__(self, name, args):
        self.name, self.out, self.args = name, Path(args.out), args
        self.history = []
        self.start = time.time()
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "rng"}
        self.config = config
        print(f"{name}: writing to {self.out}", flush=True)

    def log(self, row):
        row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
        row["wall_time_s"] = round(time.time() - self.start, 1)
        self.history.append(row)
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)
        self._write_history()

    def _write_history(self):
        columns = []
        for row in self.history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for row in self.history:
            w.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        write_atomic(self.out / "metrics.csv", buf.getvalue())
        write_atomic(self.out / "metrics.json", json.dumps(self.history, indent=1) + "\n")

    def finish(self, summary):
        summary = {"example": self.name, **summary, "wall_time_s": round(time.time() - self.start, 1),
                   "config": self.config}
        write_atomic(self.out / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
        print(f"{self.name}: done in {summary['wall_time_s']:.0f} s; metrics in {self.out}/", flush=True)
        return summary


def plot_lines(path, panels, title="", xlabel="epoch"):
    """Line plots side by side: ``panels`` is [(panel title, y label, {label: (xs, ys)})].
    Returns False when matplotlib is missing (the metrics files are written regardless)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    fig = Figure(figsize=(5.0 * len(panels), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel, ylabel, series) in zip(axes, panels):
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=label)
        ax.set_title(panel)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_atomic(path, buf.getvalue())
    print(f"wrote {path}")
    return True


def column(history, key, run=None):
    """(epochs, values) of ``key`` from the history rows (of one ``run`` when given)."""
    rows = [r for r in history if key in r and (run is None or r.get("run") == run)]
    return [r["epoch"] for r in rows], [r[key] for r in rows]


def roc_auc(scores, positive):
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counting 1/2 (the Mann-Whitney statistic, from average ranks)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average rank for ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
