"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""
from tinyconv.optim.optimizer import Optimizer, check_hyperparameter


class SGD(Optimizer):
    """PyTorch's SGD rule, per parameter p with gradient g at step t:

        g <- g + weight_decay * p
        b <- g                                        at the first step (no dampening)
        b <- momentum * b + (1 - dampening) * g       afterwards
        g <- g + momentum * b  (nesterov)   or   g <- b
        p <- p - lr * g

    Without momentum the buffer is skipped: p <- p - lr * g. (This momentum form multiplies the
    step by lr at update time, unlike Sutskever et al.'s v <- mu v - lr g; the two agree while lr
    is constant.)
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group):
        check_hyperparameter("SGD", "learning rate", group["lr"])
        check_hyperparameter("SGD", "momentum", group["momentum"])
        check_hyperparameter("SGD", "dampening", group["dampening"], high=1.0)
        check_hyperparameter("SGD", "weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, param, grad, group, state):
        momentum, decay = group["momentum"], group["weight_decay"]
        if decay:
            grad = grad + decay * param.data
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                # A copy: the gradient array belongs to the parameter and is replaced or reused.
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.data -= group["lr"] * grad
