"""Tools to prove an op's gradient right, public so students can test their own ops.

``check_grad(fn, *inputs)`` compares the gradients autograd computes for ``fn`` with central
finite differences in float64. Hypothesis strategies generate the awkward cases (odd sizes,
non-square kernels, stride > kernel, dilation, groups, batch 1) that hand-picked examples miss.
"""
import numpy as np

from tinyconv.tensor import Tensor


def numerical_grad(fn, inputs, index, direction=None, eps=1e-6):
    """Central differences of ``sum(fn(*inputs) * weight)`` w.r.t. ``inputs[index]``.

    With ``direction`` (an array shaped like the input) it returns the directional derivative
    (a scalar); otherwise the full gradient, one pair of evaluations per element.
    """
    x = inputs[index]

    def value_at(perturbed):
        args = [Tensor(a) for a in inputs]
        args[index] = Tensor(perturbed)
        return float(np.sum(fn(*args).data.astype(np.float64)))

    if direction is not None:
        return (value_at(x + eps * direction) - value_at(x - eps * direction)) / (2 * eps)
    grad = np.zeros_like(x)
    flat = x.reshape(-1).copy()
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = value_at(flat.reshape(x.shape))
        flat[i] = original - eps
        minus = value_at(flat.reshape(x.shape))
        flat[i] = original
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def check_grad(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, max_elements=64, directions=3, seed=0):
    """Assert that autograd's gradients of ``fn`` match central differences.

    ``fn`` takes Tensors and returns a Tensor of any shape; its output is reduced with fixed
    random weights, so every output element's gradient is exercised. Inputs (arrays or Tensors)
    are cast to float64, and all of them are checked. Inputs with more than ``max_elements``
    elements are checked along ``directions`` random directions instead of per element.
    Raises AssertionError naming the input, the worst element and both values.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    probe = fn(*[Tensor(a) for a in arrays])
    weight = rng.uniform(0.5, 1.5, size=probe.shape)

    def weighted(*args):
        return fn(*args) * Tensor(weight)

    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    out = weighted(*leaves)
    out.backward(Tensor(np.ones(out.shape)))
    for i, leaf in enumerate(leaves):
        analytic = leaf.grad if leaf.grad is not None else np.zeros_like(arrays[i])
        if arrays[i].size <= max_elements:
            numeric = numerical_grad(weighted, arrays, i, eps=eps)
            close = np.isclose(analytic, numeric, atol=atol, rtol=rtol)
            if not close.all():
                worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), analytic.shape)
                raise AssertionError(
                    f"gradient of input {i} (shape {arrays[i].shape}) is wrong at {tuple(map(int, worst))}: "
                    f"autograd {analytic[worst]:.8g}, finite differences {numeric[worst]:.8g}; "
                    f"{int((~close).sum())} of {close.size} elements differ")
        else:
            for _ in range(directions):
                v = rng.standard_normal(arrays[i].shape)
                numeric = numerical_grad(weighted, arrays, i, direction=v, eps=eps)
                projected = float(np.sum(analytic * v))
                if not np.isclose(projected, numeric, atol=atol * np.sqrt(v.size), rtol=rtol):
                    raise AssertionError(
                        f"gradient of input {i} (shape {arrays[i].shape}) is wrong along a random "
                        f"direction: autograd {projected:.8g}, finite differences {numeric:.8g}")


# ---- hypothesis strategies (imported lazily so the library does not need hypothesis) ----

def arrays(shape, dtype=np.float64, low=-2.0, high=2.0):
    """Strategy: arrays of ``shape`` (a tuple or a strategy of tuples) with values in [low, high]."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8)
    return hnp.arrays(dtype, shape, elements=elements)


def distinct_arrays(shape, dtype=np.float64, seed_strategy=None):
    """Strategy: arrays whose values are all distinct and well separated (no max-pool ties,
    no ReLU kinks within finite-difference reach): a shuffled arithmetic progression in [-1, 1]
    with an even number of terms, so 0 is never one of them."""
    from hypothesis import strategies as st

    def build(seed, shape):
        n = int(np.prod(shape))
        values = np.linspace(-1.0, 1.0, n + n % 2)[:n]
        return np.random.default_rng(seed).permutation(values).reshape(shape).astype(dtype)

    shape_st = shape if hasattr(shape, "example") else st.just(tuple(shape))
    return st.builds(build, seed_strategy or st.integers(0, 2**32 - 1), shape_st)


def conv_params(max_batch=2, max_channels=4, max_size=7, max_kernel=3, groups=True, depthwise=False):
    """Strategy: dicts describing a valid conv2d problem.

    Keys: n, c_in, c_out, h, w, kh, kw, stride (pair), padding (pair, up to half the kernel),
    dilation (pair), groups. Draws odd sizes, non-square kernels, stride > kernel and batch 1.
    """
    from hypothesis import assume, strategies as st

    @st.composite
    def build(draw):
        kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
        if depthwise:
            c_in = draw(st.integers(1, max_channels))
            g = c_in
            c_out = c_in * draw(st.integers(1, 2))
        else:
            g = draw(st.sampled_from([1, 2, 3])) if groups else 1
            c_in = g * draw(st.integers(1, max(1, max_channels // g)))
            c_out = g * draw(st.integers(1, max(1, max_channels // g)))
        h = draw(st.integers(1, max_size))
        w = draw(st.integers(1, max_size))
        assume(h + 2 * padding[0] >= dilation[0] * (kh - 1) + 1)
        assume(w + 2 * padding[1] >= dilation[1] * (kw - 1) + 1)
        return dict(n=draw(st.integers(1, max_batch)), c_in=c_in, c_out=c_out, h=h, w=w, kh=kh, kw=kw,
                    stride=stride, padding=padding, dilation=dilation, groups=g)

    return build()


def pool_params(max_batch=2, max_channels=3, max_size=8, max_kernel=3):
    """Strategy: dicts for a valid 2-D pooling problem (n, c, h, w, kernel, stride, padding, ceil_mode)."""
    from hypothesis import assume, strategies as st

    @st.composite
    def build(draw):
        kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
        h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
        assume(h + 2 * padding[0] >= kernel[0] and w + 2 * padding[1] >= kernel[1])
        return dict(n=draw(st.integers(1, max_batch)), c=draw(st.integers(1, max_channels)), h=h, w=w,
                    kernel=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))

    return build()
