"""Compute vs size of the model zoo at 224x224, with the papers' reported ImageNet accuracies.

    python examples/compute_chart.py [--out compute_chart.png]

Parameters and multiply-adds are counted by ``tinyconv.summary`` (convs and fully connected
layers; one 224x224 image), on models built with zero weights (``skip_init``) since only shapes
matter. Accuracies are NOT measured here: they are the top-1 numbers each paper reports on the
ImageNet (ILSVRC-2012) validation set, under each paper's own test protocol (listed below), so
they compare only roughly across families.
"""
import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tinyconv  # noqa: E402
from tinyconv.models import googlenet, mobilenet_v1, resnet, skip_init, vgg  # noqa: E402

# name: (constructor, reported top-1 % or None, source). Top-1 = 100 - the reported top-1 error.
ZOO = {
    # Simonyan & Zisserman 2015, Table 3: single test scale, train S = test Q = 256 (dense evaluation).
    "VGG-11 (A)": (lambda: vgg("A"), 70.4, "VGG Table 3 (S=Q=256)"),
    "VGG-11-LRN (A-LRN)": (lambda: vgg("A-LRN"), 70.3, "VGG Table 3 (S=Q=256)"),
    "VGG-13 (B)": (lambda: vgg("B"), 71.3, "VGG Table 3 (S=Q=256)"),
    "VGG-16 (C)": (lambda: vgg("C"), 71.9, "VGG Table 3 (S=Q=256)"),
    "VGG-16 (D)": (lambda: vgg("D"), 73.0, "VGG Table 3 (S=Q=256)"),
    "VGG-19 (E)": (lambda: vgg("E"), 72.7, "VGG Table 3 (S=Q=256)"),
    # Szegedy et al. 2015 report top-5 only: 10.07% error for one model, one crop (Table 5).
    "GoogLeNet": (googlenet, None, "GoogLeNet Table 5: top-5 err 10.07% (1 model, 1 crop); no top-1"),
    # He et al. 2015, 10-crop testing: Table 2 (ResNet-18, option A shortcuts) and Table 3
    # (34 with option B, 50, 101, 152).
    "ResNet-18": (lambda: resnet(18), 72.12, "ResNet Table 2 (10-crop, option A)"),
    "ResNet-34": (lambda: resnet(34), 75.48, "ResNet Table 3 (10-crop, 34 B)"),
    "ResNet-50": (lambda: resnet(50), 77.15, "ResNet Table 3 (10-crop)"),
    "ResNet-101": (lambda: resnet(101), 78.25, "ResNet Table 3 (10-crop)"),
    "ResNet-152": (lambda: resnet(152), 78.57, "ResNet Table 3 (10-crop)"),
    # Howard et al. 2017, Table 6 (width multiplier, 224x224, single crop).
    "MobileNet 1.0": (lambda: mobilenet_v1(width_mult=1.0), 70.6, "MobileNet Table 6"),
    "MobileNet 0.75": (lambda: mobilenet_v1(width_mult=0.75), 68.4, "MobileNet Table 6"),
    "MobileNet 0.5": (lambda: mobilenet_v1(width_mult=0.5), 63.7, "MobileNet Table 6"),
    "MobileNet 0.25": (lambda: mobilenet_v1(width_mult=0.25), 50.6, "MobileNet Table 6"),
}
FAMILY_STYLE = {"VGG": ("tab:red", "s"), "GoogLeNet": ("tab:green", "D"), "ResNet": ("tab:blue", "o"),
                "MobileNet": ("tab:purple", "^")}


def measure():
    """name -> (parameters, multiply-adds) at 224x224."""
    rows = {}
    for name, (build, _, _) in ZOO.items():
        with skip_init():
            model = build()
        s = tinyconv.summary(model, (3, 224, 224), print_table=False)
        rows[name] = (s.total_params, s.total_mult_adds)
    return rows


def draw(rows, out):
    fig, ax = plt.subplots(figsize=(11, 7.5), dpi=120)
    for family, (color, marker) in FAMILY_STYLE.items():
        names = [n for n in rows if n.startswith(family)]
        ax.scatter([rows[n][0] / 1e6 for n in names], [rows[n][1] / 1e9 for n in names], s=70, c=color,
                   marker=marker, label=family, edgecolors="black", linewidths=0.6, zorder=3)
    # The six VGGs sit within 8% of each other in size: their labels go in a column to the right,
    # joined to the points by thin lines. Other labels sit next to their points, nudged (in points)
    # where neighbours would overlap.
    vgg_column = {"VGG-19 (E)": 30, "VGG-16 (D)": 18, "VGG-16 (C)": 11.5, "VGG-13 (B)": 7.4,
                  "VGG-11-LRN (A-LRN)": 4.7, "VGG-11 (A)": 3.0}  # label heights, billions
    offsets = {"ResNet-34": (-12, -26), "ResNet-50": (8, 2), "ResNet-152": (-30, 8), "GoogLeNet": (-30, -26)}
    for name, (params, macs) in rows.items():
        top1 = ZOO[name][1]
        text = f"{name}\n{top1:.1f}% top-1" if top1 is not None else f"{name}\n(top-5 only: 89.9%)"
        point = (params / 1e6, macs / 1e9)
        if name in vgg_column:
            ax.annotate(text, point, xytext=(200, vgg_column[name]), textcoords="data", fontsize=8,
                        va="center", zorder=4, arrowprops=dict(arrowstyle="-", color="0.5", lw=0.6))
        else:
            ax.annotate(text, point, xytext=offsets.get(name, (8, -6)), textcoords="offset points",
                        fontsize=8, zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.3, 700)
    ax.set_ylim(0.03, 50)
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("multiply-adds per 224x224 image (billions, log scale)")
    ax.set_title("The tinyconv model zoo at 224x224: compute vs size\n"
                 "counts: tinyconv.summary (conv + fc)   |   "
                 "accuracies: ImageNet top-1 AS REPORTED in each paper",
                 fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left")
    ax.text(0.99, 0.01, "Reported, not measured here. VGG: Table 3, single scale S=Q=256.  GoogLeNet: top-5 "
            "only (Table 5).\nResNet: 10-crop, Tables 2-3 (18 with option-A shortcuts).  MobileNet: Table 6.",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="0.3")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="compute_chart.png", help="PNG to write (default %(default)s)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = measure()
    print(f"{'model':20s} {'params':>13s} {'mult-adds':>16s}  reported top-1  source")
    for name, (params, macs) in rows.items():
        top1, source = ZOO[name][1], ZOO[name][2]
        reported = "n/a" if top1 is None else f"{top1:.2f}%"
        print(f"{name:20s} {params:>13,} {macs:>16,}  {reported:>14s}  {source}")
    draw(rows, args.out)
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
