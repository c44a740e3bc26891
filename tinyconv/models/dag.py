"""Generic DAG networks: layers wired as any directed acyclic graph, not only a chain.

A chain (``nn.Sequential``) computes x_{l+1} = f_l(x_l). A DAG network lets each node read any
earlier values: v = f_v(u_1, ..., u_k) for the nodes or graph inputs u_i it names. That covers
several inputs and outputs, skip connections across stages (ResNet, U-Net, DenseNet), and merges
of parallel branches by concatenation (GoogLeNet) or addition (ResNet). Backprop is the same chain
rule on the graph: a value read by several nodes receives the sum of their gradients,
dL/du = sum over consumers v of (dv/du)^T dL/dv, which autograd does by accumulating where a
tensor fans out.

``DAG(inputs, nodes, outputs)`` checks the graph once (names unique and defined, no cycles, every
node contributes to some output) and runs the nodes in a topological order.

``dag_cifar()`` is the demo graph of ``examples/dag.py``::

    image (N,3,32,32) -> rgb_stem 3x3 conv, 16 ----.
                                                    concat -> stem (24 @32) -------------------.
    edges (N,1,32,32) -> edge_stem 3x3 conv, 8 ----'             |                            |
                                    down1: 3x3 conv s2, 32 @16 <-'                   skip: avg pool 4
                                      |-> branch_a: 3x3 conv, 32 --.                          |
                                      '-> branch_b: 1x1 conv, 32 --+- add + ReLU (merge1)      |
                                    down2: 3x3 conv s2, 64 @8 <----'                          |
                                      '-> concat with skip (64 + 24 @8) <---------------------'
                                    fuse: 3x3 conv, 64 @8 -> classifier: GAP + linear -> logits (N,10)
                                                          -> coarse: 1x1 conv -> (N,1,8,8) (grey image at 8x8)

Every conv is conv-BN-ReLU except the 1x1 branch (conv-BN; the merge applies the ReLU) and the
final 1x1 'coarse' conv. Two inputs (the image and its Sobel edge magnitude), two outputs (class
logits and an 8x8 reconstruction of the grey image), one cross-stage skip, one concat merge of
two inputs' branches, one additive merge of two parallel branches.
"""
import tinyconv.functional as F
from tinyconv import nn
from tinyconv.models.multitask import conv_bn_relu, init_relu_convs


class Add(nn.Module):
    """y = sum of the inputs (same shape, or broadcastable); ``relu=True`` applies ReLU after
    (fused into one op for two inputs)."""

    def __init__(self, relu=False):
        super().__init__()
        self.relu = bool(relu)

    def forward(self, *xs):
        if len(xs) < 2:
            raise ValueError(f"Add: needs at least two inputs, got {len(xs)}")
        if self.relu and len(xs) == 2:
            return F.add_relu(xs[0], xs[1])
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return F.relu(y) if self.relu else y

    def extra_repr(self):
        return "relu=True" if self.relu else ""


class Concat(nn.Module):
    """y = the inputs joined along ``axis`` (channels by default); backward splits the gradient."""

    def __init__(self, axis=1):
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        return F.concat(list(xs), axis=self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class DAG(nn.Module):
    """A network whose nodes form a directed acyclic graph.

    inputs: names of the graph inputs, in the order ``forward`` takes them positionally.
    nodes: a sequence of ``(name, module, input_names)``; the module is called with the values of
        ``input_names`` (graph inputs or other nodes, any order of definition) as positional args.
    outputs: names of the nodes returned by ``forward``.

    ``forward(*tensors, **named_tensors)`` returns the output tensor when there is one output,
    else a tuple in ``outputs`` order. Node modules are registered under ``nodes.<name>``, so
    state dict keys read ``nodes.fuse.0.weight``. ``order`` holds the execution order.
    """

    def __init__(self, inputs, nodes, outputs):
        super().__init__()
        self.input_names = tuple(inputs)
        self.output_names = tuple(outputs)
        self.wiring = {}
        self.nodes = nn.Module()  # a named container (there is no ModuleDict)
        for name, module, sources in nodes:
            if name in self.wiring or name in self.input_names:
                raise ValueError(f"DAG: the name {name!r} is used twice")
            if not isinstance(module, nn.Module):
                raise TypeError(f"DAG: node {name!r} needs an nn.Module, got {type(module).__name__}")
            self.nodes.add_module(name, module)
            self.wiring[name] = tuple([sources] if isinstance(sources, str) else sources)
        if len(set(self.input_names)) != len(self.input_names):
            raise ValueError(f"DAG: repeated input names in {self.input_names}")
        for name, sources in self.wiring.items():
            unknown = [s for s in sources if s not in self.wiring and s not in self.input_names]
            if unknown or not sources:
                raise ValueError(f"DAG: node {name!r} reads undefined values {unknown}" if unknown
                                 else f"DAG: node {name!r} has no inputs")
        missing = [o for o in self.output_names if o not in self.wiring]
        if missing or not self.output_names:
            raise ValueError(f"DAG: outputs {missing} are not nodes" if missing else "DAG: no outputs")
        self.order = self._topological_order()
        self._check_all_used()

    def _topological_order(self):
        """Kahn's algorithm; ties keep the order nodes were given in, so runs are reproducible."""
        pending = {name: sum(s in self.wiring for s in set(srcs)) for name, srcs in self.wiring.items()}
        consumers = {name: [] for name in self.wiring}
        for name, sources in self.wiring.items():
            for s in set(sources):
                if s in self.wiring:
                    consumers[s].append(name)
        ready = [n for n in self.wiring if pending[n] == 0]
        order = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for c in consumers[name]:
                pending[c] -= 1
                if pending[c] == 0:
                    ready.append(c)
        if len(order) != len(self.wiring):
            cyclic = sorted(n for n in self.wiring if pending[n] > 0)
            raise ValueError(f"DAG: the graph has a cycle through {cyclic}")
        return tuple(order)

    def _check_all_used(self):
        """Every node and input must lie on a path to an output: a dead node's parameters would
        never get a gradient, which is almost surely a wiring mistake."""
        live, stack = set(), list(self.output_names)
        while stack:
            name = stack.pop()
            if name in live:
                continue
            live.add(name)
            stack.extend(self.wiring.get(name, ()))
        dead = [n for n in list(self.wiring) + list(self.input_names) if n not in live]
        if dead:
            raise ValueError(f"DAG: {dead} do not reach any output {self.output_names}")

    def forward(self, *args, **kwargs):
        if len(args) > len(self.input_names):
            raise TypeError(f"DAG: takes {len(self.input_names)} inputs {self.input_names}, got {len(args)}")
        values = dict(zip(self.input_names, args))
        for name, x in kwargs.items():
            if name not in self.input_names or name in values:
                raise TypeError(f"DAG: unexpected or repeated input {name!r}")
            values[name] = x
        absent = [n for n in self.input_names if n not in values]
        if absent:
            raise TypeError(f"DAG: missing inputs {absent}")
        for name in self.order:
            values[name] = getattr(self.nodes, name)(*(values[s] for s in self.wiring[name]))
        outs = tuple(values[o] for o in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def extra_repr(self):
        wiring = "; ".join(f"{n} <- {', '.join(self.wiring[n])}" for n in self.order)
        return f"inputs={self.input_names}, outputs={self.output_names}, wiring: {wiring}"


def conv_bn(in_channels, out_channels, kernel_size=1, stride=1):
    """Conv-BN without the ReLU, for a branch whose merge applies the nonlinearity."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                   padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels))


def dag_cifar(num_classes=10, width=16):
    """The two-input, two-output demo DAG drawn in the module docstring (``width`` = 16 there).

    forward(image (N,3,32,32), edges (N,1,32,32)) -> (logits (N, num_classes), coarse (N,1,8,8)).
    Any input size divisible by 4 works; ``coarse`` is then (N, 1, H/4, W/4).
    """
    w = width
    nodes = [
        ("rgb_stem", conv_bn_relu(3, w), ["image"]),
        ("edge_stem", conv_bn_relu(1, w // 2), ["edges"]),
        ("stem", Concat(), ["rgb_stem", "edge_stem"]),
        ("down1", conv_bn_relu(w + w // 2, 2 * w, stride=2), ["stem"]),
        ("branch_a", conv_bn_relu(2 * w, 2 * w), ["down1"]),
        ("branch_b", conv_bn(2 * w, 2 * w, 1), ["down1"]),
        ("merge1", Add(relu=True), ["branch_a", "branch_b"]),
        ("down2", conv_bn_relu(2 * w, 4 * w, stride=2), ["merge1"]),
        # The skip crosses two stages: the stem's 32x32 features, averaged down to 8x8.
        ("skip", nn.AvgPool2d(4), ["stem"]),
        ("merge2", Concat(), ["down2", "skip"]),
        ("fuse", conv_bn_relu(4 * w + w + w // 2, 4 * w), ["merge2"]),
        ("logits", nn.Sequential(nn.GlobalAvgPool2d(), nn.Linear(4 * w, num_classes)), ["fuse"]),
        ("coarse", nn.Conv2d(4 * w, 1, 1), ["fuse"]),
    ]
    model = DAG(["image", "edges"], nodes, ["logits", "coarse"])
    return init_relu_convs(model, keep=[model.nodes.coarse])
