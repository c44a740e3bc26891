"""Adam (Kingma & Ba 2015) with bias correction and L2 weight decay, as PyTorch computes it."""
import math

from tinyconv.backend import array_module
from tinyconv.optim.optimizer import Optimizer, check_hyperparameter


class Adam(Optimizer):
    """Per parameter p with gradient g, at step t = 1, 2, ...:

        g <- g + weight_decay * p                 (L2 penalty folded into the gradient)
        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State per parameter: 'step' (int), 'exp_avg' (m), 'exp_avg_sq' (v).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_group(self, group):
        check_hyperparameter("Adam", "learning rate", group["lr"])
        check_hyperparameter("Adam", "eps", group["eps"])
        check_hyperparameter("Adam", "weight_decay", group["weight_decay"])
        if len(group["betas"]) != 2:
            raise ValueError(f"Adam: betas must be a pair, got {group['betas']!r}")
        for i, beta in enumerate(group["betas"]):
            check_hyperparameter("Adam", f"beta{i + 1}", beta, high=1.0, high_open=True)

    def _update(self, param, grad, group, state):
        xp = array_module(param.data)
        beta1, beta2 = group["betas"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(param.data), exp_avg_sq=xp.zeros_like(param.data))
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** t) + group["eps"]
        param.data -= (group["lr"] / (1 - beta1 ** t)) * m / denom
