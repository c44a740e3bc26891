"""Multi-scale ConvNet with weights shared across scales (Farabet et al. 2013), labelling pixels of
real CIFAR images.

The model (tinyconv.models.multiscale): a 3-level Laplacian pyramid of the image (2x2 average
pooling and nearest upsampling, so it is differentiable), the same 3-layer conv net f applied to
every level, f's outputs upsampled (nearest) to 32x32 and concatenated, then a per-pixel
classifier (1x1 convs) -- our choice of Farabet's per-pixel labelling over per-image classification.

The task is the same dense labelling as examples/recurrent_cnn.py (border_contrast_labels: each
pixel is background / darker / brighter relative to the image's border colour, after a 5x5 blur),
which needs context from up to ~16 pixels away. f alone sees 7x7 pixels; at scale s its 7x7 window
covers 7 * 2^s original pixels. To show what the scales buy, the same f is also trained on one
scale only (--scales 1) with the same budget, and both are reported.

    python examples/multiscale.py --quick
    python examples/multiscale.py
    python examples/multiscale.py --no-baseline --pyramid gaussian
"""
import sys

import numpy as np

import tinyconv
from _common import Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches, plot_lines
from tinyconv import Tensor
from tinyconv.models.multiscale import multiscale
from tinyconv.models.rcnn import border_contrast_labels, pixel_accuracy, pixel_cross_entropy


def main(argv=None):
    p = make_parser("multiscale", __doc__, epochs=3, batch_size=32, lr=3e-3, train_subset=4000,
                    test_subset=500, quick_train=256, quick_test=100)
    p.add_argument("--scales", type=int, default=3)
    p.add_argument("--pyramid", choices=("laplacian", "gaussian"), default="laplacian")
    p.add_argument("--widths", default="16,32,32", help="widths of the shared net f")
    p.add_argument("--no-baseline", action="store_true", help="skip the single-scale comparison")
    args = finish_args(p.parse_args(argv))
    data = Data(args)
    widths = tuple(int(w) for w in args.widths.split(","))
    train_seg = border_contrast_labels(data.train_images)
    test_seg = border_contrast_labels(data.test_images)
    majority = float(np.bincount(test_seg.ravel(), minlength=3).max() / test_seg.size)
    n = len(data.train_labels)
    run = Run("multiscale", args)
    configs = [args.scales] + ([] if args.no_baseline or args.scales == 1 else [1])
    results = {}
    for scales in configs:
        tag = f"{scales} scale" + ("s" if scales > 1 else "")
        tinyconv.random.manual_seed(args.seed)
        model = multiscale(num_classes=3, scales=scales, widths=widths, pyramid=args.pyramid)
        print(f"{tag}: {model.num_parameters():,} parameters ({sum(q.size for q in model.features.parameters()):,} "
              f"in f, shared by the scales)")
        opt, sched = adam_cosine(model.parameters(), args, args.epochs * (n // args.batch_size))

        def train_step(idx):
            model.train()
            out = model(Tensor(data.normalize(data.train_images[idx])))
            loss = pixel_cross_entropy(out, train_seg[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            return {"loss": float(loss.item()), "acc": pixel_accuracy(out, train_seg[idx])}

        def evaluate():
            model.eval()
            m = len(data.test_labels)
            acc = loss = 0.0
            with tinyconv.no_grad():
                for idx in minibatches(m, 100, drop_last=False):
                    out = model(Tensor(data.normalize(data.test_images[idx])))
                    acc += pixel_accuracy(out, test_seg[idx]) * len(idx)
                    loss += float(pixel_cross_entropy(out, test_seg[idx]).item()) * len(idx)
            return {"test_pixel_acc": acc / m, "test_loss": loss / m}

        last = fit(args, run, train_step, evaluate, n, tag=f"{tag}: ")
        results[tag] = {"scales": scales, "parameters": model.num_parameters(),
                        "test_pixel_acc": last["test_pixel_acc"], "test_loss": last["test_loss"]}
    plot_lines(args.out / "multiscale.png", [
        ("test pixel accuracy", "accuracy", {t: column(run.history, "test_pixel_acc", run=t) for t in results}),
        ("test pixel cross-entropy", "loss", {t: column(run.history, "test_loss", run=t) for t in results}),
    ], title=f"shared-weight multi-scale net ({args.pyramid} pyramid), dense border-contrast labels")
    print(f"\n{'model':<10} {'parameters':>10} {'pixel acc':>10}   (majority class: {majority:.3f})")
    for tag, r in results.items():
        print(f"{tag:<10} {r['parameters']:>10,} {r['test_pixel_acc']:>10.3f}")
    run.finish({"epochs": args.epochs, "train_images": n, "test_images": len(data.test_labels),
                "pyramid": args.pyramid, "majority_baseline": majority, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
