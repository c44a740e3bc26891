"""Linear: the fully connected layer y = x W^T + b."""

import tinyconv.functional as F
from tinyconv.nn import init
from tinyconv.nn._checks import check_positive_int
from tinyconv.nn.module import Module


class Linear(Module):
    """y = x W^T + b with W (out_features, in_features), b (out_features,).

    Input (*, in_features), output (*, out_features): leading axes are flattened into one batch
    axis for the matrix product and restored after. Initialised like PyTorch: W and b ~
    U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        check_positive_int("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = int(in_features), int(out_features)
        init.add_weight_and_bias(self, (self.out_features, self.in_features), bias)

    def reset_parameters(self):
        init.fan_in_uniform_(self.weight, self.bias)

    def forward(self, x):
        if x.ndim == 2:
            return F.linear(x, self.weight, self.bias)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input must be (*, {self.in_features}), got shape {x.shape}")
        y = F.linear(x.reshape(-1, self.in_features), self.weight, self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
