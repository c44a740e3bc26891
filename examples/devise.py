"""DeViSE (Frome et al. 2013) on CIFAR-10: images projected into a label-embedding space, with
zero-shot recognition of a class never seen in training.

Label embeddings: the hand-written attribute vectors below (no downloads), one per CIFAR-10 class,
normalised to unit length by the model. Each column is an attribute in [0, 1]; the held-out
class (default: truck) gets no training images, but every one of its attributes is taught by the
seen classes (truck = the wheels and road of automobile + the size and cargo of ship/airplane).

Training, as in the paper in miniature, on the 9 seen classes only:
  1. --pretrain-epochs of ordinary softmax training of the visual model (ConvTrunk + a 9-way
     linear classifier, which is then thrown away);
  2. --epochs of DeViSE training: projection M (lr) and trunk (lr * --trunk-lr-factor) trained
     with the hinge rank loss, margin 0.1, ranking the true label's embedding above the 8 other
     seen labels' embeddings.

Evaluation on test rows 0..N-1, scoring all 10 label embeddings (the held-out one included):
  seen images:     hit@1 among the 9 seen labels, and among all 10 (and how many of them the
                   held-out label takes: the unseen label competes with the seen ones)
  held-out images: hit@k (k = 1, 2, 3) -- is the held-out label's embedding the nearest one? --,
                   its mean rank among the 10 labels (chance: 5.5), where the images land instead,
                   and the AUC of the held-out label's score for telling held-out images from
                   seen-class images (chance 0.5)

    python examples/devise.py --quick
    python examples/devise.py
    python examples/devise.py --holdout horse
"""
import sys

import numpy as np

import tinyconv
import tinyconv.functional as F
from _common import (CLASSES, Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches,
                     plot_lines, roc_auc)
from tinyconv import Tensor, nn
from tinyconv.models.devise import devise_cifar, hinge_rank_loss

ATTRIBUTES = ("animal", "vehicle", "flies", "has_wings", "has_wheels", "on_water", "on_road", "four_legs",
              "has_fur", "has_feathers", "has_hooves", "domestic", "carries_cargo", "size")
# One row per CIFAR-10 class, columns as ATTRIBUTES (size: 0 tiny .. 1 huge).
ATTRIBUTE_TABLE = {
    #             anim veh  fly  wing whl  water road legs fur  fthr hoof dom  cargo size
    "airplane":   (0,   1,   1,   1,   0.5, 0,   0,   0,   0,   0,   0,   0,   0.5,  1.0),
    "automobile": (0,   1,   0,   0,   1,   0,   1,   0,   0,   0,   0,   0,   0,    0.5),
    "bird":       (1,   0,   1,   1,   0,   0,   0,   0,   0,   1,   0,   0,   0,    0.1),
    "cat":        (1,   0,   0,   0,   0,   0,   0,   1,   1,   0,   0,   1,   0,    0.2),
    "deer":       (1,   0,   0,   0,   0,   0,   0,   1,   1,   0,   1,   0,   0,    0.6),
    "dog":        (1,   0,   0,   0,   0,   0,   0,   1,   1,   0,   0,   1,   0,    0.3),
    "frog":       (1,   0,   0,   0,   0,   0.5, 0,   0.5, 0,   0,   0,   0,   0,    0.05),
    "horse":      (1,   0,   0,   0,   0,   0,   0,   1,   1,   0,   1,   1,   0,    0.8),
    "ship":       (0,   1,   0,   0,   0,   1,   0,   0,   0,   0,   0,   0,   1,    1.0),
    "truck":      (0,   1,   0,   0,   1,   0,   1,   0,   0,   0,   0,   0,   1,    0.8),
}


def label_embeddings():
    return np.array([ATTRIBUTE_TABLE[c] for c in CLASSES], dtype=np.float64)


def main(argv=None):
    p = make_parser("devise", __doc__, epochs=3, batch_size=128, lr=2e-3, train_subset=15000)
    p.add_argument("--holdout", choices=CLASSES, default="truck", help="the zero-shot class")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="softmax epochs first (default 1)")
    p.add_argument("--trunk-lr-factor", type=float, default=0.3)
    p.add_argument("--margin", type=float, default=0.1, help="hinge rank loss margin (paper: 0.1)")
    p.add_argument("--widths", default="32,64,128")
    args = finish_args(p.parse_args(argv))
    if args.pretrain_epochs is None:
        args.pretrain_epochs = 1
    data = Data(args)
    held = CLASSES.index(args.holdout)
    seen = np.array([c for c in range(10) if c != held])
    to_seen = np.full(10, -1)
    to_seen[seen] = np.arange(9)
    keep = data.train_labels != held
    train_images, train_labels = data.train_images[keep], data.train_labels[keep]
    n = len(train_labels)
    table = label_embeddings()
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cos = unit @ unit[held]
    print(f"held-out class: {args.holdout}; {n} training images of the 9 seen classes. Nearest label "
          "embeddings to it (cosine): " + ", ".join(f"{CLASSES[c]} {cos[c]:.2f}" for c in np.argsort(-cos)[1:4]))
    model = devise_cifar(table, widths=tuple(int(w) for w in args.widths.split(",")))
    run = Run("devise", args)

    def augment(idx):
        images = train_images[idx]
        flip = args.rng.random(len(idx)) < 0.5
        return Tensor(data.normalize(np.where(flip[:, None, None, None], images[..., ::-1], images)))

    # Phase 1: softmax pretraining of the visual model on the seen classes.
    classifier = nn.Linear(model.visual.out_features, 9)
    params = list(model.visual.parameters()) + list(classifier.parameters())
    opt, sched = adam_cosine(params, args, args.pretrain_epochs * (n // args.batch_size))

    def softmax_step(idx):
        model.train()
        logits = classifier(model.visual(augment(idx)))
        y = to_seen[train_labels[idx]]
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": float(loss.item()), "acc": float((logits.data.argmax(1) == y).mean())}

    def evaluate():
        model.eval()
        m = len(data.test_labels)
        scores = np.empty((m, 10), np.float32)
        with tinyconv.no_grad():
            for idx in minibatches(m, 250, drop_last=False):
                scores[idx] = model(Tensor(data.normalize(data.test_images[idx]))).data
        y = data.test_labels
        is_held = y == held
        ranks = (scores > scores[np.arange(m), y][:, None]).sum(axis=1) + 1      # 1 = nearest
        seen_pred = seen[scores[:, seen].argmax(1)]
        nearest = scores.argmax(1)
        evaluate.nearest_for_held = np.bincount(nearest[is_held], minlength=10)
        return {"seen_hit1_of9": float((seen_pred == y)[~is_held].mean()),
                "seen_hit1_of10": float((ranks == 1)[~is_held].mean()),
                "zeroshot_hit1": float((ranks == 1)[is_held].mean()),
                "zeroshot_hit2": float((ranks <= 2)[is_held].mean()),
                "zeroshot_hit3": float((ranks <= 3)[is_held].mean()),
                "zeroshot_mean_rank": float(ranks[is_held].mean()),
                "seen_taken_by_held_out": float((nearest == held)[~is_held].mean()),
                "zeroshot_label_auc": roc_auc(scores[:, held], is_held)}

    if args.pretrain_epochs:
        fit(args, run, softmax_step, lambda: {}, n, epochs=args.pretrain_epochs, tag="softmax: ")

    # Phase 2: DeViSE, hinge rank loss over the seen labels' embeddings.
    groups = [{"params": list(model.projection.parameters())},
              {"params": list(model.visual.parameters()), "lr": args.lr * args.trunk_lr_factor}]
    opt, sched = adam_cosine(groups, args, args.epochs * (n // args.batch_size))

    def devise_step(idx):
        model.train()
        scores = model(augment(idx), labels=seen)
        y = to_seen[train_labels[idx]]
        loss = hinge_rank_loss(scores, y, args.margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": float(loss.item()), "hit1": float((scores.data.argmax(1) == y).mean())}

    last = fit(args, run, devise_step, evaluate, n, tag="devise: ")
    plot_lines(args.out / "devise.png", [
        ("seen classes", "hit@1",
         {f"among {k} labels": column(run.history, f"seen_hit1_of{k}", run="devise") for k in (9, 10)}),
        (f"held-out class ({args.holdout})", "hit@k among 10 labels",
         {f"hit@{k}": column(run.history, f"zeroshot_hit{k}", run="devise") for k in (1, 2, 3)}),
    ], title="DeViSE with attribute embeddings, zero-shot on one held-out class")
    landed = evaluate.nearest_for_held
    print(f"seen classes: hit@1 {last['seen_hit1_of9']:.3f} among the 9 seen labels, "
          f"{last['seen_hit1_of10']:.3f} among all 10")
    print(f"held-out '{args.holdout}' images: nearest label is '{args.holdout}' for {last['zeroshot_hit1']:.1%} "
          f"(chance 10%), within the nearest 2: {last['zeroshot_hit2']:.1%} (chance 20%), 3: "
          f"{last['zeroshot_hit3']:.1%} (chance 30%); mean rank {last['zeroshot_mean_rank']:.2f} of 10 (chance 5.5)")
    print(f"seen-class images whose nearest label is '{args.holdout}': {last['seen_taken_by_held_out']:.1%} "
          "(the price of admitting the unseen label)")
    print(f"AUC of the '{args.holdout}' embedding's score, held-out vs seen images: "
          f"{last['zeroshot_label_auc']:.3f} (chance 0.5)")
    print("where the held-out images land (nearest label): "
          + ", ".join(f"{CLASSES[c]} {landed[c]}" for c in np.argsort(-landed) if landed[c]))
    run.finish({"holdout": args.holdout, "epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs,
                "train_images": n, "test_images": len(data.test_labels), "attributes": list(ATTRIBUTES),
                "parameters": model.num_parameters(),
                "nearest_label_for_held_out": {CLASSES[c]: int(landed[c]) for c in range(10) if landed[c]},
                **{k: v for k, v in last.items() if k.startswith(("seen_", "zeroshot_"))}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
