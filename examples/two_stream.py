"""Two-stream ConvNets (Simonyan & Zisserman 2014) on synthetic action clips made of real CIFAR images.

A clip is a real CIFAR image sliding across the frame: L frames (default 5), --speed pixels per
frame, in one of 8 compass directions (or 4 with --classes 4); the "action" to recognise is the
direction (tinyconv.models.two_stream.moving_clips: reflect-padded image, moving 32x32 crop).

    spatial stream   input: the middle frame (3 channels)           appearance only
    temporal stream  input: the L - 1 frame-to-frame RGB differences, stacked: 3 (L - 1) channels
                     (a cheap stand-in for the paper's 2L stacked optical-flow channels)
    fusion           average of the two streams' softmax scores (late fusion, as in the paper)

Both streams follow the paper's table (conv1 7x7 stride 2 + LRN + pool, conv2 5x5 stride 2 [+ LRN
on the spatial stream] + pool, conv3-5 3x3, pool, full6, full7, dropout) with widths scaled by
--width (0.125: 12-32-64-64-64 channels, full6 512, full7 256) at 32x32. As in the paper the
streams share nothing; they are trained at the same time here on the sum of their losses (which
gives each exactly its own gradient). The spatial stream cannot see motion in a single frame, so
by construction it stays near chance: the action is in the temporal stream, which is the point.

    python examples/two_stream.py --quick
    python examples/two_stream.py
"""
import sys

import numpy as np

import tinyconv
import tinyconv.functional as F
from _common import Data, Run, adam_cosine, column, finish_args, fit, make_parser, minibatches, plot_lines
from tinyconv import Tensor
from tinyconv.models.two_stream import DIRECTION_NAMES, frame_differences, late_fusion, moving_clips, two_stream


def main(argv=None):
    p = make_parser("two_stream", __doc__, epochs=3, batch_size=64, lr=1e-3, train_subset=10000)
    p.add_argument("--classes", type=int, choices=(4, 8), default=8, help="number of directions")
    p.add_argument("--frames", type=int, default=5, help="L, frames per clip")
    p.add_argument("--speed", type=int, default=2, help="pixels per frame")
    p.add_argument("--width", type=float, default=0.125, help="width multiplier of the paper's table")
    p.add_argument("--dropout", type=float, default=0.5)
    args = finish_args(p.parse_args(argv))
    data = Data(args)
    step = 8 // args.classes                   # directions 0, 2, 4, 6 for 4 classes
    names = DIRECTION_NAMES[::step]
    model = two_stream(num_classes=args.classes, temporal_channels=3 * (args.frames - 1), width=args.width,
                       input_size=32, dropout=args.dropout)
    print(f"streams: spatial {model.spatial.num_parameters():,} and temporal "
          f"{model.temporal.num_parameters():,} parameters; classes {', '.join(names)}")
    n = len(data.train_labels)
    opt, sched = adam_cosine(model.parameters(), args, args.epochs * (n // args.batch_size))
    test_dirs = np.arange(len(data.test_labels)) % args.classes   # balanced, fixed test actions

    def inputs(images, classes):
        clips = moving_clips(data.normalize(images), classes * step, frames=args.frames, speed=args.speed)
        return Tensor(np.ascontiguousarray(clips[:, args.frames // 2])), Tensor(frame_differences(clips))

    def train_step(idx):
        model.train()
        y = args.rng.integers(0, args.classes, len(idx))
        frame, motion = inputs(data.train_images[idx], y)
        s, t = model(frame, motion)
        ls, lt = F.cross_entropy(s, y), F.cross_entropy(t, y)
        opt.zero_grad()
        (ls + lt).backward()
        opt.step()
        sched.step()
        return {"loss_spatial": float(ls.item()), "loss_temporal": float(lt.item()),
                "acc_temporal": float((t.data.argmax(1) == y).mean())}

    def evaluate():
        model.eval()
        m = len(data.test_labels)
        hits = {"spatial": 0, "temporal": 0, "fused": 0}
        confusion = np.zeros((args.classes, args.classes), np.int64)
        with tinyconv.no_grad():
            for idx in minibatches(m, 250, drop_last=False):
                y = test_dirs[idx]
                s, t = model(*inputs(data.test_images[idx], y))
                fused = late_fusion(s, t).data.argmax(1)
                hits["spatial"] += int((s.data.argmax(1) == y).sum())
                hits["temporal"] += int((t.data.argmax(1) == y).sum())
                hits["fused"] += int((fused == y).sum())
                np.add.at(confusion, (y, fused), 1)
        evaluate.confusion = confusion
        return {f"test_acc_{k}": v / m for k, v in hits.items()}

    run = Run("two_stream", args)
    last = fit(args, run, train_step, evaluate, n)
    plot_lines(args.out / "two_stream.png", [
        ("test accuracy", "accuracy",
         {k: column(run.history, f"test_acc_{k}") for k in ("spatial", "temporal", "fused")}),
        ("training loss", "cross-entropy",
         {k: column(run.history, f"train_loss_{k}") for k in ("spatial", "temporal")}),
    ], title=f"two-stream nets, {args.classes} motion directions (chance {1 / args.classes:.3f})")
    print(f"test accuracy: spatial {last['test_acc_spatial']:.3f}, temporal {last['test_acc_temporal']:.3f}, "
          f"late fusion {last['test_acc_fused']:.3f} (chance {1 / args.classes:.3f})")
    print("fused confusion matrix (rows: true direction):\n     " + " ".join(f"{d:>4}" for d in names))
    for d, row in zip(names, evaluate.confusion):
        print(f"{d:>4} " + " ".join(f"{v:4d}" for v in row))
    run.finish({"epochs": args.epochs, "train_clips_per_epoch": n, "test_clips": len(data.test_labels),
                "classes": list(names), "frames": args.frames, "speed": args.speed, "width": args.width,
                "parameters": model.num_parameters(), "chance": 1 / args.classes,
                "confusion_fused": evaluate.confusion.tolist(),
                **{k: v for k, v in last.items() if k.startswith("test_")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
