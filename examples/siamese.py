"""Siamese networks on CIFAR-10 pairs: shared vs unshared branch weights (the lecture's question).

Pairs of real CIFAR-10 images are labelled "same" when both images have the same class (half of
the pairs) and "different" otherwise. Two branches (a ConvTrunk and a linear map to a 32-d
embedding) embed the two images; the contrastive loss (Hadsell et al. 2006, as in Lin et al.
2015) pulls same-class pairs together and pushes different-class pairs a margin apart.

Two models are trained with the same pairs, seeds and budget:
    shared     one branch used for both images (a true siamese net, half the parameters)
    unshared   two branches of the same shape with their own weights (as Lin et al. compare for
               ground-level vs aerial photos, whose statistics differ)

Evaluation on fixed test pairs (from test rows 0..N-1): ROC AUC of the negative embedding distance
and the pair accuracy at the distance threshold that is best on 2,000 training pairs. Both results
are printed side by side and saved (metrics.csv has one row per model and epoch).

    python examples/siamese.py --quick
    python examples/siamese.py
"""
import sys

import numpy as np

import tinyconv
from _common import (Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches, plot_lines,
                     roc_auc)
from tinyconv import Tensor
from tinyconv.models.siamese import contrastive_loss, make_pairs, siamese_cifar


def best_threshold(distances, same):
    """The distance threshold t maximising the accuracy of "same iff d < t" on these pairs."""
    order = np.argsort(distances)
    d, s = distances[order], np.asarray(same)[order].astype(bool)
    # Accuracy of t between d[k-1] and d[k]: same pairs among the first k + different pairs after.
    correct = np.concatenate([[0], np.cumsum(s)]) + np.concatenate([[(~s).sum()], (~s).sum() - np.cumsum(~s)])
    k = int(np.argmax(correct))
    if k == 0:
        return float(d[0]) - 1e-6
    return float((d[k - 1] + d[min(k, len(d) - 1)]) / 2) if k < len(d) else float(d[-1]) + 1e-6


def main(argv=None):
    p = make_parser("siamese", __doc__, epochs=3, batch_size=64, lr=2e-3, train_subset=10000)
    p.add_argument("--margin", type=float, default=1.0, help="contrastive-loss margin m")
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--widths", default="16,32,64", help="trunk widths per stage")
    p.add_argument("--test-pairs", type=int, default=None, help="default: 2 x --test-subset (1 x with --quick)")
    args = finish_args(p.parse_args(argv))
    data = Data(args)
    widths = tuple(int(w) for w in args.widths.split(","))
    n = len(data.train_labels)
    pair_rng = np.random.default_rng(args.seed + 1)
    n_test = args.test_pairs or (1 if args.quick else 2) * len(data.test_labels)
    test_pairs = make_pairs(data.test_labels, n_test, pair_rng)
    calib_pairs = make_pairs(data.train_labels, 200 if args.quick else 2000, pair_rng)
    # The same training pairs, in the same order, for both models.
    steps_per_epoch = n // args.batch_size
    train_pairs = [make_pairs(data.train_labels, args.batch_size, pair_rng)
                   for _ in range(steps_per_epoch * args.epochs)]
    run = Run("siamese", args)
    results = {}
    for shared in (True, False):
        tag = "shared" if shared else "unshared"
        tinyconv.random.manual_seed(args.seed)  # the same initial weights for branch a
        model = siamese_cifar(shared=shared, widths=widths, embed_dim=args.embed_dim)
        print(f"{tag}: {model.num_parameters():,} parameters")
        opt, sched = adam_cosine(model.parameters(), args, len(train_pairs))
        cursor = iter(train_pairs)

        def embed_pairs(images, pairs):
            i, j, same = pairs
            d = np.empty(len(i))
            with tinyconv.no_grad():
                for idx in minibatches(len(i), 250, drop_last=False):
                    ea, eb = model(Tensor(data.normalize(images[i[idx]])), Tensor(data.normalize(images[j[idx]])))
                    d[idx] = np.linalg.norm(ea.data - eb.data, axis=1)
            return d, same

        def train_step(idx):
            model.train()
            i, j, same = next(cursor)
            ea, eb = model(Tensor(data.normalize(data.train_images[i])), Tensor(data.normalize(data.train_images[j])))
            loss = contrastive_loss(ea, eb, same, args.margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            d = np.linalg.norm(ea.data - eb.data, axis=1)
            return {"loss": float(loss.item()), "d_same": float(d[same == 1].mean()),
                    "d_diff": float(d[same == 0].mean())}

        def evaluate():
            model.eval()
            threshold = best_threshold(*embed_pairs(data.train_images, calib_pairs))
            d, same = embed_pairs(data.test_images, test_pairs)
            return {"test_auc": roc_auc(-d, same == 1), "test_pair_acc": float(((d < threshold) == (same == 1)).mean()),
                    "threshold": threshold, "test_d_same": float(d[same == 1].mean()),
                    "test_d_diff": float(d[same == 0].mean())}

        last = fit(args, run, train_step, evaluate, n, tag=f"{tag}: ")
        results[tag] = {"parameters": model.num_parameters(),
                        **{k: v for k, v in last.items() if k.startswith(("test_", "threshold"))}}
    plot_lines(args.out / "siamese.png", [
        ("test ROC AUC (same vs different class)", "AUC",
         {t: column(run.history, "test_auc", run=t) for t in results}),
        ("test pair accuracy", "accuracy", {t: column(run.history, "test_pair_acc", run=t) for t in results}),
    ], title="siamese: shared vs unshared branch weights")
    print(f"\n{'branches':<10} {'parameters':>10} {'test AUC':>9} {'pair acc':>9}   (same-class pairs: "
          f"{test_pairs[2].mean():.0%} of {n_test}; chance AUC 0.5)")
    for tag, r in results.items():
        print(f"{tag:<10} {r['parameters']:>10,} {r['test_auc']:>9.3f} {r['test_pair_acc']:>9.3f}")
    run.finish({"epochs": args.epochs, "train_images": n, "test_pairs": n_test, "margin": args.margin,
                "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
