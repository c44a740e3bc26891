"""tinyconv speed on this machine, against PyTorch in the same run when it is installed.

Prints, at batch 128 in float32:
- conv2d forward+backward ms for ResNet-20's three stage shapes (3x3, pad 1; C=16 @32x32,
  C=32 @16x16, C=64 @8x8);
- training-step images/s of ResNet-20, MobileNet v1 (CIFAR form) and VGG-16 with BN (CIFAR form),
  and ResNet-20 inference, each with the share of this machine's ceiling it reaches: the images/s
  if every multiply-add ran at the speed numpy's sgemm reaches here (measured in the same run);
- peak memory (RSS) of a process running ResNet-20 training steps;
- where ResNet-20's training step spends its time, op by op (``tinyconv.profile``);
- the cold-start cost (import + first conv, with and without Numba's on-disk cache).
Every figure is the median of repeats; tinyconv and PyTorch repeats alternate so that the shared
host's drift hits both alike, each section (the convs, each workload) in a fresh process, with
glibc keeping freed memory (``tinyconv.backend.retain_freed_memory``) for both frameworks, as
``python -m tinyconv.train`` runs. ``--device cuda`` times the CUDA path instead (CuPy + our
kernels + cuBLAS, against PyTorch + cuDNN when PyTorch has CUDA), synchronising after every
repeat.
Run: ``make bench`` (or ``python examples/bench.py --help``).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import tinyconv
import tinyconv.functional as F
from tinyconv import models, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference  # noqa: E402  (examples/ is not a package)

STAGES = [(16, 32), (32, 16), (64, 8)]
# name -> (tinyconv constructor, PyTorch constructor); each is timed for a training step.
WORKLOADS = {
    "resnet20": (models.resnet20, torch_reference.resnet20),
    "mobilenet": (models.mobilenet_v1_cifar, torch_reference.mobilenet_v1_cifar),
    "vgg16": (models.vgg16_cifar, torch_reference.vgg16_bn_cifar),
}
TITLES = {"resnet20": "ResNet-20", "mobilenet": "MobileNet v1 (CIFAR)", "vgg16": "VGG-16 BN (CIFAR)"}


def median_ms(samples):
    return 1e3 * statistics.median(samples)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(runners, repeats, block=3):
    """Per-runner sample lists of ``repeats`` timings, the runners taking turns in blocks.

    Turns spread the host's drift over every runner alike. Each block starts with one untimed
    run: PyTorch's OpenMP workers keep spinning for a while after its ops return, and a run
    right after a switch pays for the other framework's leftovers (measured: a conv that takes
    17 ms after itself took 21 ms right after PyTorch's).
    """
    samples = {name: [] for name in runners}
    while any(len(s) < repeats for s in samples.values()):
        for name, run in runners.items():
            run()
            for _ in range(min(block, repeats - len(samples[name]))):
                samples[name].append(timed(run))
    return samples


def synchronized(step, device, torch=None):
    """``step`` followed by a wait for the device, so a GPU repeat is timed to its end."""
    if device == "cpu":
        return step
    if torch is not None:
        def run():
            step()
            torch.cuda.synchronize()
        return run
    import cupy

    def run():
        step()
        cupy.cuda.Device().synchronize()
    return run


def tinyconv_conv_step(n, c, size, rng, device):
    x = tinyconv.tensor(rng.standard_normal((n, c, size, size)).astype(np.float32), requires_grad=True,
                        device=device)
    w = tinyconv.tensor((rng.standard_normal((c, c, 3, 3)) * 0.1).astype(np.float32), requires_grad=True,
                        device=device)
    gy = tinyconv.tensor(np.ones((n, c, size, size), np.float32), device=device).data

    def step():
        F.conv2d(x, w, padding=1).backward(gy)
    return synchronized(step, device)


def torch_conv_step(torch, n, c, size, rng, device):
    x = torch.tensor(rng.standard_normal((n, c, size, size)).astype(np.float32), device=device,
                     requires_grad=True)
    w = torch.tensor((rng.standard_normal((c, c, 3, 3)) * 0.1).astype(np.float32), device=device,
                     requires_grad=True)
    gy = torch.ones((n, c, size, size), device=device)

    def step():
        torch.nn.functional.conv2d(x, w, padding=1).backward(gy)
    return synchronized(step, device, torch)


def tinyconv_steps(model, batch, rng, device):
    """(training step, inference) callables for ``model`` on one random CIFAR-sized batch."""
    model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = tinyconv.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), device=device)
    y = rng.integers(0, 10, batch)

    def train_step():
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def infer():
        model.eval()
        with tinyconv.no_grad():
            model(x)
    return synchronized(train_step, device), synchronized(infer, device)


def torch_steps(torch, model, batch, rng, device):
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), device=device)
    y = torch.tensor(rng.integers(0, 10, batch), device=device)

    def train_step():
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)
    return synchronized(train_step, device, torch), synchronized(infer, device, torch)


# Run in a fresh process, so that its 16 MB matrices leave no trace in this one's allocator (glibc
# raises its mmap threshold after freeing them, which would spare the workloads' page faults).
SGEMM = """
import statistics, time, numpy as np
a, b = (np.random.default_rng(0).standard_normal(({size}, {size})).astype(np.float32) for _ in range(2))
a @ b
times = []
for _ in range({repeats}):
    start = time.perf_counter(); a @ b; times.append(time.perf_counter() - start)
print(2 * {size} ** 3 / statistics.median(times) / 1e9)
"""


def sgemm_gflops(repeats=5, size=2048):
    """float32 GEMM speed numpy reaches here (2*size^3 flops per product), median of repeats."""
    out = subprocess.run([sys.executable, "-c", SGEMM.format(size=size, repeats=repeats)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def ceiling_images_per_s(model, gflops, training):
    """Images/s if every multiply-add of the model (x3 for forward + two backward GEMMs) ran at
    ``gflops``."""
    mult_adds = tinyconv.summary(model, (3, 32, 32), print_table=False).total_mult_adds
    return gflops * 1e9 / (2 * mult_adds * (3 if training else 1))


# Run in a fresh process: a few ResNet-20 training steps, then the process's peak RSS in MiB. VmHWM,
# not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent at fork, and this parent
# is large.
PEAK_RSS = """
import sys, numpy as np
sys.path.insert(0, {examples!r})
import bench
bench.tinyconv.backend.retain_freed_memory()
rng = np.random.default_rng(0)
if {framework!r} == "tinyconv":
    step, _ = bench.tinyconv_steps(bench.models.resnet20(), {batch}, rng, "cpu")
else:
    import torch
    torch.set_num_threads({threads})
    step, _ = bench.torch_steps(torch, bench.torch_reference.resnet20(torch), {batch}, rng, "cpu")
for _ in range(3):
    step()
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""


def peak_rss_mib(framework, batch, threads):
    code = PEAK_RSS.format(examples=os.path.dirname(os.path.abspath(__file__)), framework=framework,
                           batch=batch, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


COLD_START = """
import time; t0 = time.perf_counter()
import numpy as np, tinyconv, tinyconv.functional as F
t1 = time.perf_counter()
x = tinyconv.tensor(np.ones((2, 3, 8, 8), np.float32), requires_grad=True)
w = tinyconv.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
F.conv2d(x, w, padding=1).sum().backward()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def cold_start(cache_dir=None):
    env = dict(os.environ)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", COLD_START], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def report_row(name, ours, theirs, unit, note=""):
    """One line: tinyconv, PyTorch, and ratio = how many times faster (or lighter) tinyconv is."""
    lower_is_better = unit in ("ms", "MiB")
    if theirs:
        ratio = f"{(theirs / ours if lower_is_better else ours / theirs):6.2f}x"
        ref = f"{theirs:10.1f}"
    else:
        ratio, ref = "   -  ", "         -"
    print(f"{name:36s} {ours:10.1f} {ref} {ratio}   ({unit}){note}")


def measure_section(section, args):
    """Rows ``(name, ours, theirs, unit, note)`` of one section: ``convs`` (the three ResNet-20
    stage convs) or a workload's training step (and ResNet-20's inference)."""
    device, rng, torch = str(tinyconv.device(args.device)), np.random.default_rng(0), None
    tinyconv.backend.retain_freed_memory()  # as python -m tinyconv.train does; PyTorch shares it
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        if torch is not None and device != "cpu" and not torch.cuda.is_available():
            torch = None
    rows = []
    if section == "convs":
        for c, size in STAGES:
            runners = {"ours": tinyconv_conv_step(args.batch, c, size, rng, device)}
            if torch:
                runners["torch"] = torch_conv_step(torch, args.batch, c, size, rng, device)
            s = alternate(runners, args.repeats)
            rows.append((f"conv3x3 fwd+bwd C={c} @{size}x{size}", median_ms(s["ours"]),
                         median_ms(s["torch"]) if torch else None, "ms", ""))
        return rows
    ours_fn, theirs_fn = WORKLOADS[section]
    model = ours_fn()
    kinds = ("train", "infer") if section == "resnet20" else ("train",)
    runners = dict(zip((f"ours_{k}" for k in kinds), tinyconv_steps(model, args.batch, rng, device)))
    if torch:
        reference = theirs_fn(torch)
        counts = model.num_parameters(), sum(p.numel() for p in reference.parameters())
        if counts[0] != counts[1]:
            raise SystemExit(f"{section}: tinyconv has {counts[0]:,} parameters, the PyTorch twin "
                             f"{counts[1]:,}: they are not the same network")
        runners.update(zip((f"torch_{k}" for k in kinds), torch_steps(torch, reference, args.batch, rng, device)))
    s = alternate(runners, args.repeats)
    for kind in kinds:
        ours = args.batch / statistics.median(s[f"ours_{kind}"])
        theirs = args.batch / statistics.median(s[f"torch_{kind}"]) if torch else None
        note = ""
        if args.sgemm_gflops:
            ceiling = ceiling_images_per_s(model.to("cpu"), args.sgemm_gflops, kind == "train")
            note = f"  {100 * ours / ceiling:4.1f}% of the {ceiling:,.0f} img/s ceiling"
        rows.append((f"{TITLES[section]} {'training step' if kind == 'train' else 'inference'}",
                     ours, theirs, "img/s", note))
    return rows


def run_section(section, args):
    """:func:`measure_section` in a fresh interpreter running this script."""
    command = [sys.executable, os.path.abspath(__file__), "--section", section, "--repeats", str(args.repeats),
               "--batch", str(args.batch), "--threads", str(args.threads), "--device", args.device,
               "--sgemm-gflops", str(args.sgemm_gflops or 0)] + (["--no-torch"] if args.no_torch else [])
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench section {section} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per figure (median reported)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch (tinyconv uses numba/BLAS defaults)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)")
    parser.add_argument("--layers", type=int, default=15, help="rows of the per-op table (0: none)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    parser.add_argument("--section", help=argparse.SUPPRESS)  # run_section's worker mode
    parser.add_argument("--sgemm-gflops", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.section:
        print(json.dumps(measure_section(args.section, args)))
        return
    device = str(tinyconv.device(args.device))
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {','.join(WORKLOADS)}")

    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch is not installed: printing tinyconv figures only.")
        if torch is not None and device != "cpu" and not torch.cuda.is_available():
            print("This PyTorch has no CUDA: printing tinyconv figures only.")
            torch = None
    rng = np.random.default_rng(0)
    print(f"tinyconv {tinyconv.__version__}, numpy {np.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ""))
    if device != "cpu":
        import cupy
        print(f"device {device}: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
              f"cupy {cupy.__version__}")
        gflops = None
    else:
        gflops = sgemm_gflops()
        print(f"numpy sgemm here: {gflops:.0f} GFLOP/s (the ceiling's speed)")
    args.sgemm_gflops = gflops
    print(f"batch {args.batch}, median of {args.repeats}; ratio = how many times faster (lighter) "
          f"tinyconv is than PyTorch (>1: tinyconv ahead)\n")
    print(f"{'':36s} {'tinyconv':>10s} {'PyTorch':>10s}  ratio")

    if device == "cpu" and not args.skip_cold_start:
        with tempfile.TemporaryDirectory() as empty_cache:
            imp_fresh, conv_fresh = cold_start(empty_cache)
        imp, conv = cold_start()
        print(f"{'import tinyconv':36s} {1e3 * imp:10.1f}            (ms)")
        print(f"{'first conv fwd+bwd, numba cached':36s} {1e3 * conv:10.1f}            (ms)")
        print(f"{'first conv fwd+bwd, cache empty':36s} {1e3 * conv_fresh:10.1f}            (ms, compiles)")

    # Each section runs in a fresh process: in one long-lived process, ResNet-20 trained ~15 %
    # slower after the conv rows had run than in a process of its own (measured repeatedly;
    # the cause was not pinned down, the allocator's state is the suspect).
    for section in ["convs"] + workloads:
        for row in run_section(section, args):
            report_row(*row[:4], note=row[4] if gflops else "")

    if device == "cpu":
        report_row("peak RSS, ResNet-20 training", peak_rss_mib("tinyconv", args.batch, args.threads),
                   peak_rss_mib("torch", args.batch, args.threads) if torch else None, "MiB")

    if args.layers:
        tinyconv.backend.retain_freed_memory()  # as in the sections, or page faults fill the table
        step, _ = tinyconv_steps(models.resnet20(), args.batch, rng, device)
        step()
        with tinyconv.profile() as prof:
            step()
        print(f"\nResNet-20 training step, tinyconv, by op and input shape (the {args.layers} slowest):")
        print(prof.table(args.layers))


if __name__ == "__main__":
    main()
