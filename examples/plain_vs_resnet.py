"""Plot the degradation experiment (He et al. 2015, Figure 6): plain nets get worse with depth, ResNets better.

Reads ROOT/{plain20,plain56,resnet20,resnet56}/metrics.csv (written by ``python -m tinyconv.train``,
e.g. through ``make cifar-plain-vs-resnet``) and draws plain nets on the left and ResNets on the right:
train error dashed, test error (rows 0-999, the exact CIFAR-10 test images) solid. Prints the final
errors as a table. Runs that are missing are left out with a note.

    python examples/plain_vs_resnet.py runs/plain-vs-resnet --out runs/plain-vs-resnet/plain_vs_resnet.png
"""
import argparse
import sys
from pathlib import Path

from tinyconv.train import plot_comparison, read_csv

PANELS = {"plain": ("plain20", "plain56"), "ResNet": ("resnet20", "resnet56")}


def label(model: str) -> str:
    """'plain20' -> 'plain-20', 'resnet56' -> 'ResNet-56' (the paper's names)."""
    family, depth = model.rstrip("0123456789"), model[len(model.rstrip("0123456789")):]
    return f"{'ResNet' if family == 'resnet' else family}-{depth}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="folder holding one run folder per model")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default ROOT/plain_vs_resnet.png)")
    args = p.parse_args(argv)

    panels, rows = {}, []
    for panel, models in PANELS.items():
        runs = {}
        for model in models:
            csv_path = args.root / model / "metrics.csv"
            if not csv_path.is_file():
                print(f"note: no {csv_path}; {model} is left out", file=sys.stderr)
                continue
            history = read_csv(csv_path)
            runs[label(model)] = history
            scored = [r for r in history if r["test1k_error_pct"] is not None]
            if scored:
                last = scored[-1]
                rows.append((label(model), last["epoch"], last["train_error_pct"], last["test1k_error_pct"]))
        panels[panel] = runs
    if not any(panels.values()):
        print(f"error: no runs found under {args.root}", file=sys.stderr)
        return 1

    print(f"{'model':<10} {'epoch':>5} {'train err %':>11} {'test err % (rows 0-999)':>24}")
    for name, epoch, train_err, test_err in rows:
        print(f"{name:<10} {epoch:>5} {train_err:>11.2f} {test_err:>24.2f}")
    out = args.out or args.root / "plain_vs_resnet.png"
    if plot_comparison(panels, out, title="CIFAR-10: dashed = train error, solid = test error (rows 0-999)"):
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
