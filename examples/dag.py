"""A generic DAG network on CIFAR-10: two inputs, two outputs, concat and add merges, a cross-stage skip.

The graph (tinyconv.models.dag.dag_cifar, drawn in its docstring) reads

    image   the normalised RGB image                       (N, 3, 32, 32)
    edges   its Sobel gradient magnitude (grey level)       (N, 1, 32, 32), computed here with numpy

and produces

    logits  the CIFAR-10 class scores                       (N, 10)   -> cross-entropy
    coarse  the grey image at 8x8 (4x4 average pooled)      (N, 1, 8, 8) -> mean squared error

L = CE(logits) + --coarse-weight * MSE(coarse). The two input branches are concatenated, two
parallel branches (3x3 and 1x1) are added, and the stem's features skip two stages to be
concatenated at 8x8. Reported: test accuracy, test loss and the coarse reconstruction's MSE, plus
the mean gradient magnitude each branch received in the last epoch (every branch learns).

    python examples/dag.py --quick
    python examples/dag.py
"""
import sys

import numpy as np

import tinyconv
import tinyconv.functional as F
from _common import Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches, plot_lines
from tinyconv import Tensor
from tinyconv.models.dag import dag_cifar

SOBEL = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)


def grey(x):
    """Normalised RGB (N, 3, H, W) -> mean over channels (N, 1, H, W)."""
    return x.mean(axis=1, keepdims=True)


def sobel_magnitude(g):
    """sqrt(Gx^2 + Gy^2) of (N, 1, H, W) with edge-replicated borders (numpy, no autograd)."""
    h, w = g.shape[2:]
    p = np.pad(g, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    gx = sum(SOBEL[i, j] * p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))
    gy = sum(SOBEL.T[i, j] * p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))
    return np.sqrt(gx * gx + gy * gy).astype(np.float32)


def inputs_and_target(data, images):
    x = data.normalize(images)
    g = grey(x)
    coarse = g.reshape(len(g), 1, 8, 4, 8, 4).mean(axis=(3, 5))
    return Tensor(x), Tensor(sobel_magnitude(g)), coarse


def main(argv=None):
    p = make_parser("dag", __doc__, epochs=4, batch_size=128, lr=2e-3, train_subset=15000)
    p.add_argument("--width", type=int, default=16, help="base width of the graph's convs")
    p.add_argument("--coarse-weight", type=float, default=1.0, help="weight of the reconstruction loss")
    args = finish_args(p.parse_args(argv))
    data = Data(args)
    model = dag_cifar(width=args.width)
    print(f"model: {model.num_parameters():,} parameters; execution order: {', '.join(model.order)}")
    n = len(data.train_labels)
    opt, sched = adam_cosine(model.parameters(), args, args.epochs * (n // args.batch_size))
    branches = ("rgb_stem", "edge_stem", "branch_a", "branch_b", "down2", "fuse", "logits", "coarse")
    grad_norms = {b: [] for b in branches}

    def train_step(idx):
        model.train()
        image, edges, coarse_target = inputs_and_target(data, data.train_images[idx])
        labels = data.train_labels[idx]
        logits, coarse = model(image, edges)
        ce = F.cross_entropy(logits, labels)
        mse = F.mse_loss(coarse, coarse_target)
        loss = ce + mse * args.coarse_weight
        opt.zero_grad()
        loss.backward()
        for b in branches:  # how much gradient reached each branch's weights
            params = list(getattr(model.nodes, b).parameters())
            grad_norms[b].append(float(np.sqrt(sum((q.grad.astype(np.float64) ** 2).sum() for q in params))))
        opt.step()
        sched.step()
        return {"loss": float(loss.item()), "ce": float(ce.item()), "coarse_mse": float(mse.item()),
                "acc": float((logits.data.argmax(1) == labels).mean())}

    def evaluate():
        model.eval()
        m = len(data.test_labels)
        correct, ce, mse = 0, 0.0, 0.0
        with tinyconv.no_grad():
            for idx in minibatches(m, 250, drop_last=False):
                image, edges, coarse_target = inputs_and_target(data, data.test_images[idx])
                logits, coarse = model(image, edges)
                labels = data.test_labels[idx]
                correct += int((logits.data.argmax(1) == labels).sum())
                ce += float(F.cross_entropy(logits, labels).item()) * len(idx)
                mse += float(F.mse_loss(coarse, coarse_target).item()) * len(idx)
        row = {"test_acc": correct / m, "test_ce": ce / m, "test_coarse_mse": mse / m}
        for b in branches:
            row[f"grad_{b}"] = float(np.mean(grad_norms[b])) if grad_norms[b] else 0.0
            grad_norms[b].clear()
        return row

    run = Run("dag", args)
    last = fit(args, run, train_step, evaluate, n)
    plot_lines(args.out / "dag.png", [
        ("classification output", "test accuracy", {"logits": column(run.history, "test_acc")}),
        ("reconstruction output", "test MSE (8x8 grey)", {"coarse": column(run.history, "test_coarse_mse")}),
        ("gradient reaching each branch", "mean ||dL/dW||", {b: column(run.history, f"grad_{b}") for b in branches}),
    ], title="two-input, two-output DAG on CIFAR-10")
    zero_mse = float(np.mean(inputs_and_target(data, data.test_images)[2] ** 2))
    print(f"test accuracy {last['test_acc']:.3f}, coarse-image MSE {last['test_coarse_mse']:.4f} "
          f"(predicting 0 gives {zero_mse:.4f})")
    print("gradient norm per branch (last epoch): "
          + ", ".join(f"{b} {last[f'grad_{b}']:.3g}" for b in branches))
    run.finish({"epochs": args.epochs, "train_images": n, "test_images": len(data.test_labels),
                "parameters": model.num_parameters(), "order": list(model.order),
                **{k: v for k, v in last.items() if k.startswith(("test_", "grad_"))}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
