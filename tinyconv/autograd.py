"""Graph recording and reverse-mode differentiation.

A ``Function`` maps input arrays to output arrays (``forward``) and output gradients to input
gradients (``backward``), both on raw numpy/cupy arrays. Calling a Function on Tensors runs
``forward`` and, when gradients are wanted, links the outputs to the Function so that
``Tensor.backward`` can later walk the graph from the loss back to the leaves.
"""
import contextlib
import threading
import weakref

_state = threading.local()
# The tinyconv.profiler.Profile timing every forward/backward, or None (the usual case).
active_profile = None


def is_grad_enabled():
    """Whether Functions called now record the graph (False inside ``no_grad()``)."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def set_grad_enabled(enabled):
    previous = is_grad_enabled()
    _state.grad_enabled = bool(enabled)
    try:
        yield
    finally:
        _state.grad_enabled = previous


def no_grad():
    """Context manager: operations inside record no graph (inference, parameter updates)."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


class Function:
    """One differentiable operation.

    Subclasses implement ``forward(*arrays) -> array | tuple of arrays`` and
    ``backward(*grad_outputs) -> grad | tuple of grads`` (one per input, ``None`` where an input
    needs none). ``self.needs_input_grad`` is set before ``forward`` runs, so forward can skip
    saving what backward will not use. Non-tensor parameters (stride, axis...) go to ``__init__``.
    """

    needs_input_grad = ()

    def __call__(self, *inputs):
        from tinyconv.tensor import Tensor

        inputs = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        record = is_grad_enabled() and any(x.requires_grad for x in inputs)
        self.needs_input_grad = tuple(record and x.requires_grad for x in inputs)
        arrays = tuple(x.data for x in inputs)
        if active_profile is None:
            outs = self.forward(*arrays)
        else:
            outs = active_profile.run(self, "forward", self.forward, arrays, arrays[0].shape)
        single = not isinstance(outs, tuple)
        if single:
            outs = (outs,)
        outputs = tuple(Tensor(y) for y in outs)
        if record:
            self.inputs = inputs
            self.output_refs = tuple(weakref.ref(y) for y in outputs)
            self.output_meta = tuple((y.shape, y.dtype) for y in outs)
            for i, y in enumerate(outputs):
                if y.dtype.kind == "f":  # integer/bool outputs (a cast to int) are constants
                    y.requires_grad, y.creator, y.output_index = True, self, i
        return outputs[0] if single else outputs

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    @property
    def name(self):
        return type(self).__name__

    def release(self):
        """Drop everything saved for backward; a later backward through here is an error."""
        self.__dict__.clear()
        self.released = True


def _topological_order(root_fn):
    """Functions reachable from ``root_fn``, each after every Function that produced its inputs.

    Iterative depth-first post-order: a 20,000-op chain must not hit Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root_fn, False)]
    while stack:
        fn, finished = stack.pop()
        if finished:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        if getattr(fn, "released", False):
            raise RuntimeError(
                f"backward through {fn.name} a second time: its graph was freed by the first "
                "backward; call backward(retain_graph=True) the first time to keep it")
        visited.add(id(fn))
        stack.append((fn, True))
        for x in fn.inputs:
            if x.creator is not None and id(x.creator) not in visited:
                stack.append((x.creator, False))
    return order


def _accumulate(total, grad):
    return grad if total is None else total + grad


def _accumulate_into(tensor, grad):
    """Add ``grad`` into ``tensor.grad``, which is always an array of the tensor's own: backward may
    hand one array (or a read-only broadcast view) to several inputs."""
    grad = grad.astype(tensor.dtype, copy=tensor.grad is None)
    tensor.grad = grad if tensor.grad is None else tensor.grad + grad


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    xp = root.xp
    if not root.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no graph")
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward: grad can be omitted only for a single-element output, got shape {root.shape}")
        grad = xp.ones(root.shape, dtype=root.dtype)
    else:
        grad = xp.asarray(grad.data if hasattr(grad, "creator") else grad, dtype=root.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"backward: grad has shape {grad.shape}, the tensor has {root.shape}")

    if root.creator is None:
        _accumulate_into(root, grad)
        return

    # Pending gradients are keyed by (producing Function, output position), not by tensor: an
    # intermediate tensor may already be gone once the Function that consumed it was released.
    grads = {(id(root.creator), root.output_index): grad}
    for fn in reversed(_topological_order(root.creator)):
        grad_outputs = [grads.pop((id(fn), i), None) for i in range(len(fn.output_meta))]
        if all(g is None for g in grad_outputs):
            if not retain_graph:
                fn.release()
            continue
        for ref, g in zip(fn.output_refs, grad_outputs):
            y = ref()
            if y is not None and g is not None and y.retains_grad:
                _accumulate_into(y, g)
        grad_outputs = [g if g is not None else xp.zeros(shape, dtype=dtype)
                        for g, (shape, dtype) in zip(grad_outputs, fn.output_meta)]
        if active_profile is None:
            grad_inputs = fn.backward(*grad_outputs)
        else:
            grad_inputs = active_profile.run(fn, "backward", fn.backward, grad_outputs,
                                             fn.inputs[0].shape)
        if not isinstance(grad_inputs, tuple):
            grad_inputs = (grad_inputs,)
        if len(grad_inputs) != len(fn.inputs):
            raise RuntimeError(f"{fn.name}.backward returned {len(grad_inputs)} gradients "
                               f"for {len(fn.inputs)} inputs")
        for x, gx, needed in zip(fn.inputs, grad_inputs, fn.needs_input_grad):
            if not needed or gx is None:
                continue
            if gx.shape != x.shape:
                raise RuntimeError(f"{fn.name}.backward returned a gradient of shape {gx.shape} "
                                   f"for an input of shape {x.shape}")
            if gx.dtype != x.dtype:  # a float32 input of a float64 op gets a float32 gradient
                gx = gx.astype(x.dtype)
            if x.creator is None:
                _accumulate_into(x, gx)
            else:
                key = (id(x.creator), x.output_index)
                grads[key] = _accumulate(grads.get(key), gx)
        if not retain_graph:
            fn.release()
