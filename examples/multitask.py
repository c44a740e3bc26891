"""Multi-task learning on CIFAR-10: one shared conv trunk, three heads, a weighted sum of losses.

Every training image is flipped horizontally at random and then rotated by k * 90 degrees, k drawn
uniformly from 0..3 (with numpy). The same rotated image is asked three questions:

    class      which of the 10 CIFAR-10 classes              (10-way cross-entropy)
    animal     animal or vehicle (derived from the class)    (2-way)
    rotation   k, how far it was rotated                     (4-way; needs no labels at all)

L = w_class L_class + w_animal L_animal + w_rotation L_rotation (weights from --weights). The
trunk (tinyconv.models.multitask.ConvTrunk) gets the weighted sum of the three heads' gradients.

Reported per head on the test images (rows 0..N-1 of test_batch, each rotated by k = row mod 4):
accuracy and loss, plus the class accuracy on the upright quarter (k = 0). Writes metrics.csv,
metrics.json, summary.json and multitask.png into --out.

    python examples/multitask.py --quick                 # < 1 minute
    python examples/multitask.py                         # the real run (a few minutes)
    python examples/multitask.py --weights 1,0,0         # class head alone, for comparison
"""
import sys

import numpy as np

import tinyconv
from _common import Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches, plot_lines
from tinyconv import Tensor
from tinyconv.models.multitask import animal_vs_vehicle, multitask_cifar, multitask_loss, rotate90

TASKS = ("class", "animal", "rotation")


def main(argv=None):
    p = make_parser("multitask", __doc__, epochs=4, batch_size=128, lr=2e-3, train_subset=15000)
    p.add_argument("--weights", default="1,0.5,0.5", help="loss weights for class,animal,rotation")
    p.add_argument("--widths", default="32,64,128", help="trunk widths per stage")
    args = finish_args(p.parse_args(argv))
    weights = dict(zip(TASKS, (float(w) for w in args.weights.split(","))))
    data = Data(args)
    model = multitask_cifar(widths=tuple(int(w) for w in args.widths.split(",")))
    print(f"model: {model.num_parameters():,} parameters; loss weights {weights}")
    n = len(data.train_labels)
    opt, sched = adam_cosine(model.parameters(), args, args.epochs * (n // args.batch_size))
    rng = args.rng

    def batch(images, labels, k):
        x = Tensor(data.normalize(rotate90(images, k)))
        return x, {"class": labels, "animal": animal_vs_vehicle(labels), "rotation": k}

    def train_step(idx):
        model.train()
        images = data.train_images[idx]
        flip = rng.random(len(idx)) < 0.5
        images = np.where(flip[:, None, None, None], images[..., ::-1], images)
        x, targets = batch(images, data.train_labels[idx], rng.integers(0, 4, len(idx)))
        out = model(x)
        loss, parts = multitask_loss(out, {t: y for t, y in targets.items() if weights[t]}, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        stats = {"loss": float(loss.item())}
        for t in TASKS:
            stats[f"{t}_acc"] = float((out[t].data.argmax(1) == targets[t]).mean())
        return stats

    def evaluate():
        model.eval()
        m = len(data.test_labels)
        k_all = np.arange(m) % 4
        correct = {t: np.zeros(m, bool) for t in TASKS}
        losses = {t: 0.0 for t in TASKS}
        with tinyconv.no_grad():
            for idx in minibatches(m, 250, drop_last=False):
                x, targets = batch(data.test_images[idx], data.test_labels[idx], k_all[idx])
                out = model(x)
                _, parts = multitask_loss(out, targets)
                for t in TASKS:
                    correct[t][idx] = out[t].data.argmax(1) == targets[t]
                    losses[t] += parts[t] * len(idx)
        row = {f"test_{t}_acc": float(correct[t].mean()) for t in TASKS}
        row.update({f"test_{t}_loss": losses[t] / m for t in TASKS})
        row["test_class_acc_upright"] = float(correct["class"][k_all == 0].mean())
        return row

    run = Run("multitask", args)
    last = fit(args, run, train_step, evaluate, n)
    plot_lines(args.out / "multitask.png", [
        ("test accuracy per head", "accuracy",
         {t: column(run.history, f"test_{t}_acc") for t in TASKS}
         | {"class (upright only)": column(run.history, "test_class_acc_upright")}),
        ("test loss per head", "cross-entropy", {t: column(run.history, f"test_{t}_loss") for t in TASKS}),
    ], title=f"multi-task CIFAR-10, weights {weights}")
    chance = {"class": 0.1, "animal": 0.6, "rotation": 0.25}
    print("head       test acc   chance")
    for t in TASKS:
        note = "" if weights[t] else "  (weight 0: untrained)"
        print(f"{t:<10} {last[f'test_{t}_acc']:8.3f}   {chance[t]:.2f}{note}")
    print(f"class accuracy on upright images: {last['test_class_acc_upright']:.3f}")
    run.finish({"weights": weights, "epochs": args.epochs, "train_images": n,
                "test_images": len(data.test_labels), "parameters": model.num_parameters(),
                **{k: v for k, v in last.items() if k.startswith("test_")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
