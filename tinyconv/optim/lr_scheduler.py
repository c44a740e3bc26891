"""Learning-rate schedules, each a closed-form function of the step count.

A scheduler sets every group's lr to ``lr_at(step)`` on construction (step 0) and on each
``step()``. Because the lr depends on the step count alone, a schedule resumes exactly from
``state_dict()`` (which holds the count and the settings) and can be shifted and composed
(``LinearWarmup(..., after=...)``). Values agree with PyTorch's schedulers of the same names.

The base lr of each group is recorded as ``group['initial_lr']`` (PyTorch's key), so several
schedulers built on one optimizer share the same base.
"""
import bisect
import math
import numbers

from tinyconv.optim.optimizer import Optimizer


def _check_number(scheduler, name, value, low=0.0, high=None, integer=False, low_open=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{scheduler}: {name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if (value <= low if low_open else value < low) or (high is not None and value > high):
        bounds = f"{'>' if low_open else '>='} {low}" + ("" if high is None else f" and <= {high}")
        raise ValueError(f"{scheduler}: {name} must be {bounds}, got {value}")


class LRScheduler:
    """Base class. Subclasses set their settings, then call ``super().__init__(optimizer)``, and
    implement ``lr_at(step) -> [lr per group]``. ``_settings`` names the attributes that
    ``state_dict`` saves next to the step count."""

    _settings = ()

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1  # PyTorch's name for the step count; the first step() makes it 0
        self.step()

    def lr_at(self, step):
        raise NotImplementedError

    def _apply(self, step):
        """Set the optimizer's groups to the schedule's values at ``step``."""
        self._last_lr = [float(lr) for lr in self.lr_at(step)]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def step(self):
        """Advance one step (an iteration or an epoch, whichever the schedule is counted in)."""
        self.last_epoch += 1
        self._apply(self.last_epoch)

    def get_last_lr(self):
        """The lr of each group set by the latest step."""
        return list(self._last_lr)

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                **{name: getattr(self, name) for name in self._settings}}

    def load_state_dict(self, state):
        """Restore the step count and settings, and set the groups' lrs to the schedule's value there."""
        expected = {"last_epoch", "base_lrs", *self._settings}
        if set(state) != expected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected keys {sorted(expected)}, "
                             f"got {sorted(state)}")
        if len(state["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: saved {len(state['base_lrs'])} base lrs "
                             f"for {len(self.optimizer.param_groups)} parameter groups")
        for name in self._settings:
            setattr(self, name, state[name])
        self.base_lrs = list(state["base_lrs"])
        self.last_epoch = int(state["last_epoch"])
        self._apply(self.last_epoch)


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= step): a step decay at each milestone
    (the ResNet paper divides by 10 at 32k and 48k iterations). A milestone listed twice decays twice."""

    _settings = ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma=0.1):
        milestones = list(milestones)
        for m in milestones:
            _check_number("MultiStepLR", "milestone", m, integer=True)
        _check_number("MultiStepLR", "gamma", gamma, low_open=True)
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer)

    def lr_at(self, step):
        decays = bisect.bisect_right(self.milestones, step)
        return [base * self.gamma ** decays for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi step / T_max)) / 2 (Loshchilov & Hutter 2017,
    without restarts). Past T_max the cosine continues, rising again, as PyTorch's does."""

    _settings = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        _check_number("CosineAnnealingLR", "T_max", T_max, integer=True, low_open=True)
        _check_number("CosineAnnealingLR", "eta_min", eta_min)
        self.T_max, self.eta_min = int(T_max), eta_min
        super().__init__(optimizer)

    def lr_at(self, step):
        factor = (1 + math.cos(math.pi * step / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * factor for base in self.base_lrs]


class LinearWarmup(LRScheduler):
    """Linear warm-up for ``warmup_steps`` steps, then another schedule (or the constant base lr).

        lr = base_lr * (start_factor + (1 - start_factor) * step / warmup_steps)   for step < warmup_steps
        lr = after.lr_at(step - warmup_steps)   afterwards (base_lr if ``after`` is None)

    ``after`` is a scheduler built on the same optimizer; it is shifted to start when the warm-up
    ends, and only this scheduler is stepped. Without ``after`` this equals PyTorch's
    ``LinearLR(start_factor, 1.0, total_iters=warmup_steps)``. OneCycleLR has its own warm-up
    and is not accepted as ``after``.
    """

    _settings = ("warmup_steps", "start_factor")

    def __init__(self, optimizer, warmup_steps, start_factor=0.1, after=None):
        _check_number("LinearWarmup", "warmup_steps", warmup_steps, integer=True)
        _check_number("LinearWarmup", "start_factor", start_factor, high=1.0)
        if after is not None:
            if not isinstance(after, LRScheduler) or after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: after must be a scheduler built on the same optimizer")
            if isinstance(after, OneCycleLR):
                raise ValueError("LinearWarmup: OneCycleLR warms up by itself (pct_start); use it alone")
        self.warmup_steps, self.start_factor, self.after = int(warmup_steps), start_factor, after
        super().__init__(optimizer)

    def lr_at(self, step):
        if step < self.warmup_steps:
            factor = self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
            return [base * factor for base in self.base_lrs]
        if self.after is not None:
            return self.after.lr_at(step - self.warmup_steps)
        return list(self.base_lrs)

    def state_dict(self):
        state = super().state_dict()
        if self.after is not None:
            state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state):
        state = dict(state)
        after = state.pop("after", None)
        if (after is None) != (self.after is None):
            raise ValueError("LinearWarmup.load_state_dict: the saved warm-up and this one differ in "
                             "having an 'after' schedule")
        if after is not None:
            self.after.load_state_dict(after)
        super().load_state_dict(state)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018) in PyTorch's two-phase form, over ``total_steps`` steps.

    Phase 1 (steps 0 .. pct_start * total_steps - 1): lr anneals from max_lr / div_factor up to
    max_lr; phase 2 (to total_steps - 1): down to max_lr / (div_factor * final_div_factor).
    Annealing is cosine, a + (b - a) (1 - cos(pi t)) / 2 for progress t in [0, 1], or linear.
    With ``cycle_momentum`` the momentum (SGD's 'momentum', Adam's beta1) moves the opposite way,
    max_momentum -> base_momentum -> max_momentum. ``max_lr`` is a number or one per group;
    the groups' own lr is ignored. Stepping beyond ``total_steps`` is an error.
    """

    _settings = ("total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "base_momentum",
                 "max_momentum", "div_factor", "final_div_factor", "max_lrs")

    def __init__(self, optimizer, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4):
        name = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"{name}: {len(max_lrs)} max_lr values for {len(groups)} parameter groups")
        for lr in max_lrs:
            _check_number(name, "max_lr", lr)
        _check_number(name, "total_steps", total_steps, integer=True, low_open=True)
        _check_number(name, "pct_start", pct_start, high=1.0)
        _check_number(name, "div_factor", div_factor, low_open=True)
        _check_number(name, "final_div_factor", final_div_factor, low_open=True)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if cycle_momentum:
            if not all("momentum" in g or "betas" in g for g in groups):
                raise ValueError(f"{name}: cycle_momentum needs an optimizer with 'momentum' or 'betas'")
            _check_number(name, "base_momentum", base_momentum, high=1.0)
            _check_number(name, "max_momentum", max_momentum, high=1.0)
        self.max_lrs, self.total_steps, self.pct_start = max_lrs, int(total_steps), pct_start
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        for group, lr in zip(groups, max_lrs):
            group["initial_lr"] = lr / div_factor
        super().__init__(optimizer)

    def _anneal(self, start, end, progress):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2 * (math.cos(math.pi * progress) + 1)
        return start + (end - start) * progress

    def _phase(self, step):
        """(phase index, progress in it) at ``step``; phase 0 rises, phase 1 falls."""
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, beyond total_steps={self.total_steps}")
        rise_end = self.pct_start * self.total_steps - 1
        if step <= rise_end:
            return 0, step / rise_end
        return 1, (step - rise_end) / (self.total_steps - 1 - rise_end)

    def lr_at(self, step):
        phase, progress = self._phase(step)
        lrs = []
        for base, peak in zip(self.base_lrs, self.max_lrs):
            start, end = (base, peak) if phase == 0 else (peak, base / self.final_div_factor)
            lrs.append(self._anneal(start, end, progress))
        return lrs

    def momentum_at(self, step):
        phase, progress = self._phase(step)
        high, low = self.max_momentum, self.base_momentum
        return self._anneal(high, low, progress) if phase == 0 else self._anneal(low, high, progress)

    def _apply(self, step):
        super()._apply(step)
        if self.cycle_momentum:
            momentum = self.momentum_at(step)
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
