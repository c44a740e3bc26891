"""An unrolled recurrent CNN (Pinheiro & Collobert 2014) labelling every pixel of real CIFAR images.

The task, built deterministically from each image (tinyconv.models.rcnn.border_contrast_labels):
the border colour b is the mean RGB of the outer 2-pixel ring; the image is box-blurred over
5x5 pixels; a pixel is background (class 0) when its blurred colour is within 0.15 (RGB in [0, 1])
of b, otherwise foreground, split by luminance into darker (class 1) or brighter (class 2) than the
border. A pixel's label depends on the border, up to ~16 pixels away, while one application of the
network sees 15x15 pixels: context must come from the recurrence.

The model applies the same conv net T times; step t sees the image and step t-1's class
probabilities (concatenated on channels); each step's per-pixel cross-entropy is in the loss, and
backprop runs through the unrolled graph into the shared weights. After every epoch the per-step
test pixel accuracy is printed: later steps should beat earlier ones.

    python examples/recurrent_cnn.py --quick
    python examples/recurrent_cnn.py            # --steps 3 --width 32 by default
"""
import sys

import numpy as np

import tinyconv
from _common import Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches, plot_lines
from tinyconv import Tensor
from tinyconv.models.rcnn import border_contrast_labels, pixel_accuracy, rcnn, rcnn_loss


def main(argv=None):
    p = make_parser("recurrent_cnn", __doc__, epochs=3, batch_size=32, lr=3e-3, train_subset=3000,
                    test_subset=500, quick_train=256, quick_test=100)
    p.add_argument("--steps", type=int, default=3, help="T, the number of unrolled steps")
    p.add_argument("--width", type=int, default=32, help="channels of the shared conv net")
    args = finish_args(p.parse_args(argv))
    data = Data(args)
    train_seg = border_contrast_labels(data.train_images)
    test_seg = border_contrast_labels(data.test_images)
    shares = np.bincount(test_seg.ravel(), minlength=3) / test_seg.size
    print("pixel classes (background, darker, brighter) on the test images: "
          + ", ".join(f"{s:.1%}" for s in shares) + f"; always guessing the commonest is {shares.max():.1%} right")
    model = rcnn(num_classes=3, width=args.width, steps=args.steps)
    print(f"model: {model.num_parameters():,} parameters, shared by all {args.steps} steps")
    n = len(data.train_labels)
    opt, sched = adam_cosine(model.parameters(), args, args.epochs * (n // args.batch_size))
    T = args.steps

    def train_step(idx):
        model.train()
        outs = model(Tensor(data.normalize(data.train_images[idx])))
        loss, per_step = rcnn_loss(outs, train_seg[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        stats = {"loss": float(loss.item())}
        stats.update({f"acc_step{t + 1}": pixel_accuracy(z, train_seg[idx]) for t, z in enumerate(outs)})
        return stats

    def evaluate():
        model.eval()
        m = len(data.test_labels)
        acc, loss = np.zeros(T), np.zeros(T)
        with tinyconv.no_grad():
            for idx in minibatches(m, 100, drop_last=False):
                outs = model(Tensor(data.normalize(data.test_images[idx])))
                _, per_step = rcnn_loss(outs, test_seg[idx])
                acc += np.array([pixel_accuracy(z, test_seg[idx]) for z in outs]) * len(idx)
                loss += np.array(per_step) * len(idx)
        row = {f"test_acc_step{t + 1}": acc[t] / m for t in range(T)}
        row.update({f"test_loss_step{t + 1}": loss[t] / m for t in range(T)})
        print("  per-step test pixel accuracy: "
              + "  ".join(f"step {t + 1}: {acc[t] / m:.3f}" for t in range(T)), flush=True)
        return row

    run = Run("recurrent_cnn", args)
    last = fit(args, run, train_step, evaluate, n)
    plot_lines(args.out / "recurrent_cnn.png", [
        ("test pixel accuracy", "accuracy",
         {f"step {t + 1}": column(run.history, f"test_acc_step{t + 1}") for t in range(T)}),
        ("test pixel cross-entropy", "loss",
         {f"step {t + 1}": column(run.history, f"test_loss_step{t + 1}") for t in range(T)}),
    ], title=f"recurrent CNN, {T} unrolled steps with shared weights")
    accs = [last[f"test_acc_step{t + 1}"] for t in range(T)]
    print("final per-step test pixel accuracy: " + ", ".join(f"{a:.3f}" for a in accs)
          + f"  (step {T} - step 1: {accs[-1] - accs[0]:+.3f})")
    run.finish({"epochs": args.epochs, "steps": T, "train_images": n, "test_images": len(data.test_labels),
                "parameters": model.num_parameters(), "majority_baseline": float(shares.max()),
                "test_pixel_acc_per_step": accs,
                "test_loss_per_step": [last[f"test_loss_step{t + 1}"] for t in range(T)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
