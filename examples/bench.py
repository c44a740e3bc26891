"""tinyconv speed on this machine, against PyTorch's CPU path in the same run when it is installed.

Prints: conv2d forward+backward ms for ResNet-20's three stage shapes (N=128, 3x3, pad 1;
C=16 @32x32, C=32 @16x16, C=64 @8x8), ResNet-20 training-step and inference images/s at batch 128,
and the cold-start cost (import + first conv, with and without Numba's on-disk cache).
``--device cuda`` times the CUDA path instead (CuPy + our kernels + cuBLAS, against PyTorch + cuDNN
when PyTorch has CUDA), synchronising the device after every repeat.
Every figure is the median of repeats; tinyconv and PyTorch repeats alternate so that the shared
host's drift hits both alike. Run: ``make bench`` (or ``python examples/bench.py --help``).
"""
import argparse
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

STAGES = [(16, 32), (32, 16), (64, 8)]


def median_ms(samples):
    return 1e3 * statistics.median(samples)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(runners, repeats, warmup=1):
    """Run each callable ``warmup`` then ``repeats`` times, interleaved; per-runner sample lists."""
    for _ in range(warmup):
        for run in runners.values():
            run()
    samples = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
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


def tinyconv_resnet(batch, rng, device):
    model = models.resnet20().to(device)
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


def torch_resnet(torch, batch, rng, device):
    """The same network in PyTorch (option-A shortcuts, BN, He init), defined here for the reference."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            out = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            short = x[:, :, ::self.stride, ::self.stride]
            if self.extra:
                short = nn.functional.pad(short, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
            return torch.relu(out + short)

    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for stage, cout in enumerate((16, 32, 64)):
        for i in range(3):
            layers.append(Block(cin, cout, 2 if stage and not i else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    model = nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), device=device)
    y = torch.tensor(rng.integers(0, 10, batch), device=device)

    def train_step():
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)
    return synchronized(train_step, device, torch), synchronized(infer, device, torch)


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


def report_row(name, ours, theirs, unit):
    ratio = f"{theirs / ours:6.2f}x" if unit == "ms" and theirs else (f"{ours / theirs:6.2f}x" if theirs else "   -  ")
    ref = f"{theirs:10.1f}" if theirs else "         -"
    print(f"{name:34s} {ours:10.1f} {ref} {ratio}   ({unit})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per figure (median reported)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch (tinyconv uses numba/BLAS defaults)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    args = parser.parse_args()
    device = str(tinyconv.device(args.device))

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
    print(f"median of {args.repeats}; ratio = PyTorch time / tinyconv time (>1: tinyconv faster)\n")
    print(f"{'':34s} {'tinyconv':>10s} {'PyTorch':>10s}  ratio")

    if device != "cpu":
        import cupy
        print(f"device {device}: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
              f"cupy {cupy.__version__}\n")
    elif not args.skip_cold_start:
        with tempfile.TemporaryDirectory() as empty_cache:
            imp_fresh, conv_fresh = cold_start(empty_cache)
        imp, conv = cold_start()
        print(f"{'import tinyconv':34s} {1e3 * imp:10.1f}            (ms)")
        print(f"{'first conv fwd+bwd, numba cached':34s} {1e3 * conv:10.1f}            (ms)")
        print(f"{'first conv fwd+bwd, cache empty':34s} {1e3 * conv_fresh:10.1f}            (ms, compiles)")

    for c, size in STAGES:
        runners = {"ours": tinyconv_conv_step(args.batch, c, size, rng, device)}
        if torch:
            runners["torch"] = torch_conv_step(torch, args.batch, c, size, rng, device)
        s = alternate(runners, args.repeats)
        report_row(f"conv3x3 fwd+bwd C={c} @{size}x{size}", median_ms(s["ours"]),
                   median_ms(s["torch"]) if torch else None, "ms")

    ours_train, ours_infer = tinyconv_resnet(args.batch, rng, device)
    runners = {"ours_train": ours_train, "ours_infer": ours_infer}
    if torch:
        runners["torch_train"], runners["torch_infer"] = torch_resnet(torch, args.batch, rng, device)
    s = alternate(runners, args.repeats)
    for kind in ("train", "infer"):
        ours = args.batch / statistics.median(s[f"ours_{kind}"])
        theirs = args.batch / statistics.median(s[f"torch_{kind}"]) if torch else None
        report_row(f"ResNet-20 {'training step' if kind == 'train' else 'inference'}", ours, theirs, "img/s")


if __name__ == "__main__":
    main()
