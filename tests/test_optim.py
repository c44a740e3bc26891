"""tinyconv.optim: update rules and schedules against PyTorch, validation, exact resume."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyconv
from tinyconv import nn, optim
from tinyconv.optim import lr_scheduler

SHAPES = [(3, 4), (5,)]


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(shape).astype(dtype)) for shape in SHAPES]


def fake_grad(p, step):
    """A deterministic gradient that depends on the parameter, as a real one would."""
    return np.sin(p * (step + 1)) + 0.1 * step


def run(optimizer, params, steps, scheduler=None):
    for step in range(steps):
        for p in params:
            p.grad = fake_grad(p.data, step)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return [p.data.copy() for p in params]


def run_torch(torch, make_optimizer, steps, seed=0):
    params = [torch.tensor(p.data, requires_grad=True) for p in make_params(seed)]
    opt = make_optimizer(params)
    for step in range(steps):
        for p in params:
            p.grad = torch.from_numpy(fake_grad(p.detach().numpy(), step))
        opt.step()
    return [p.detach().numpy() for p in params]


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.8, weight_decay=1e-2),
    dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
]
ADAM_CONFIGS = [
    dict(),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=3e-3, weight_decay=1e-2),
]


@pytest.mark.torch
@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_trajectory_matches_torch(torch, config):
    params = make_params()
    ours = run(optim.SGD(params, **config), params, steps=6)
    theirs = run_torch(torch, lambda ps: torch.optim.SGD(ps, **config), steps=6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.torch
@pytest.mark.parametrize("config", ADAM_CONFIGS)
def test_adam_trajectory_matches_torch(torch, config):
    params = make_params()
    ours = run(optim.Adam(params, **config), params, steps=6)
    theirs = run_torch(torch, lambda ps: torch.optim.Adam(ps, **config), steps=6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.torch
def test_param_groups_match_torch(torch):
    params = make_params()
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.01, "momentum": 0.5}]  # noqa: E731
    ours = run(optim.SGD(groups(params), lr=0.1, momentum=0.9), params, steps=4)
    theirs = run_torch(torch, lambda ps: torch.optim.SGD(groups(ps), lr=0.1, momentum=0.9), steps=4)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_sgd_plain_step_by_hand():
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.5, weight_decay=0.1)
    p.grad = np.array([0.2, 0.4])
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.5 * (0.2 + 0.1), -2.0 - 0.5 * (0.4 - 0.2)])


def test_float32_params_stay_float32_and_in_place():
    params = make_params(dtype=np.float32)
    arrays = [p.data for p in params]
    for opt in (optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True), optim.Adam(params)):
        run(opt, params, steps=2)
    assert all(p.dtype == np.float32 and p.data is a for p, a in zip(params, arrays))
    assert all(s["exp_avg"].dtype == np.float32 for s in opt.state.values())


def test_step_skips_params_without_grad_and_zero_grad_clears():
    a, b = make_params()
    opt = optim.SGD([a, b], lr=0.1)
    before = b.data.copy()
    a.grad = np.ones_like(a.data)
    opt.step()
    np.testing.assert_array_equal(b.data, before)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = np.ones(7)
    with pytest.raises(ValueError, match="gradient shape"):
        opt.step()


def test_no_graph_is_recorded():
    p = make_params()[0]
    p.grad = np.ones_like(p.data)
    optim.Adam([p]).step()
    assert p.is_leaf and p.creator is None


@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), "invalid learning rate -0.1"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-1), "invalid momentum"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1e-4), "invalid weight_decay"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda ps: optim.SGD([{"params": ps, "lr": -1}], lr=0.1), "invalid learning rate -1"),
    (lambda ps: optim.Adam(ps, lr=-1e-3), "invalid learning rate"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "invalid beta1 1.0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), "invalid beta2"),
    (lambda ps: optim.Adam(ps, eps=-1), "invalid eps"),
    (lambda ps: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda ps: optim.SGD([ps[0], ps[0]], lr=0.1), "appears twice"),
    (lambda ps: optim.SGD([{"params": [ps[0]]}, {"params": [ps[0]]}], lr=0.1), "appears twice"),
    (lambda ps: optim.SGD([ps[0] * 2], lr=0.1), "non-leaf"),
])
def test_invalid_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make(make_params())


def test_non_tensor_params_and_hyperparameters_are_type_errors():
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="learning rate must be a number"):
        optim.SGD(make_params(), lr="0.1")


# ---- optimizer state ----

def test_state_dict_round_trip_resumes_exactly(tmp_path):
    def build(params):
        opt = optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 1e-2}], weight_decay=1e-3)
        return opt, lr_scheduler.CosineAnnealingLR(opt, T_max=10)

    straight = make_params()
    opt, sched = build(straight)
    expected = run(opt, straight, steps=8, scheduler=sched)

    first = make_params()
    opt, sched = build(first)
    run(opt, first, steps=5, scheduler=sched)
    tinyconv.save({"model": {str(i): p.data for i, p in enumerate(first)},
                   "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt.npz")

    checkpoint = tinyconv.load(tmp_path / "ckpt.npz")
    resumed = make_params(seed=1)
    for i, p in enumerate(resumed):
        p.data[...] = checkpoint["model"][str(i)]
    opt, sched = build(resumed)
    opt.load_state_dict(checkpoint["optimizer"])
    sched.load_state_dict(checkpoint["scheduler"])
    # Continue from step 5 with the gradients the straight run saw at steps 5..7.
    for step in range(5, 8):
        for p in resumed:
            p.grad = fake_grad(p.data, step)
        opt.step()
        sched.step()
    for a, b in zip(resumed, expected):
        np.testing.assert_array_equal(a.data, b)


def test_sgd_state_dict_holds_copies_and_indices():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, steps=1)
    state = opt.state_dict()
    assert state["param_groups"] == [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0,
                                      "nesterov": False, "params": [0, 1]}]
    buffer = state["state"][0]["momentum_buffer"]
    buffer[...] = 0
    assert np.any(opt.state[params[0]]["momentum_buffer"] != 0)


def test_load_state_dict_rejects_a_different_optimizer_layout():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, steps=1)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="2 parameter groups, this optimizer has 1"):
        optim.SGD(params, lr=0.1).load_state_dict({**state, "param_groups": state["param_groups"] * 2})
    with pytest.raises(ValueError, match=r"\[2\] parameters, this optimizer's groups have \[1\]"):
        optim.SGD(params[:1], lr=0.1).load_state_dict(state)
    swapped = optim.SGD(params[::-1], lr=0.5, momentum=0.9)
    with pytest.raises(ValueError, match=r"state\[0\]\['momentum_buffer'\] has shape \(3, 4\)"):
        swapped.load_state_dict(state)
    assert swapped.param_groups[0]["lr"] == 0.5 and not swapped.state  # unchanged after the error


# ---- schedules ----

def lr_sequence(scheduler, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr())
        scheduler.step()
    return np.array(lrs)


def torch_lr_sequence(torch, make_scheduler, steps, lrs=(0.1, 0.02), momentum=0.9):
    params = [torch.zeros(1, requires_grad=True) for _ in lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], momentum=momentum)
    scheduler = make_scheduler(opt)
    values, momenta = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(steps):
            values.append(scheduler.get_last_lr())
            momenta.append([g["momentum"] for g in opt.param_groups])
            opt.step()
            scheduler.step()
    return np.array(values), np.array(momenta)


def our_optimizer(lrs=(0.1, 0.02), momentum=0.9):
    params = make_params()
    return optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=0.1, momentum=momentum)


SCHEDULES = {
    "multistep": (lambda m, opt: m.MultiStepLR(opt, milestones=[3, 7, 7], gamma=0.5), 12),
    "cosine": (lambda m, opt: m.CosineAnnealingLR(opt, T_max=10, eta_min=1e-3), 25),
    "onecycle_cos": (lambda m, opt: m.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=20), 20),
    "onecycle_linear": (lambda m, opt: m.OneCycleLR(opt, max_lr=0.3, total_steps=17, pct_start=0.25,
                                                    anneal_strategy="linear", div_factor=10.0), 17),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_torch(torch, name):
    make, steps = SCHEDULES[name]
    opt = our_optimizer()
    scheduler = make(lr_scheduler, opt)
    ours, momenta = [], []
    for _ in range(steps):
        ours.append(scheduler.get_last_lr())
        momenta.append([g["momentum"] for g in opt.param_groups])
        scheduler.step()
    theirs, their_momenta = torch_lr_sequence(torch, lambda o: make(torch.optim.lr_scheduler, o), steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(momenta, their_momenta, rtol=1e-12)


@pytest.mark.torch
def test_linear_warmup_matches_torch_linear_lr(torch):
    ours = lr_sequence(lr_scheduler.LinearWarmup(our_optimizer(), warmup_steps=5, start_factor=0.2), 9)
    theirs, _ = torch_lr_sequence(
        torch, lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=5), 9)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.torch
def test_onecycle_cycles_adam_beta1_like_torch(torch):
    params = make_params()
    opt = optim.Adam(params, betas=(0.9, 0.99))
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)
    t_opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], betas=(0.9, 0.99))
    t_scheduler = torch.optim.lr_scheduler.OneCycleLR(t_opt, max_lr=0.01, total_steps=10)
    for _ in range(9):
        assert opt.param_groups[0]["betas"] == pytest.approx(t_opt.param_groups[0]["betas"], rel=1e-12)
        assert scheduler.get_last_lr() == pytest.approx(t_scheduler.get_last_lr(), rel=1e-9)
        scheduler.step()
        t_opt.step()
        t_scheduler.step()


def test_linear_warmup_then_cosine():
    opt = our_optimizer(lrs=(0.1,))
    cosine = lr_scheduler.CosineAnnealingLR(opt, T_max=6)
    warmup = lr_scheduler.LinearWarmup(opt, warmup_steps=4, start_factor=0.25, after=cosine)
    lrs = lr_sequence(warmup, 12)[:, 0]
    expected = [0.1 * (0.25 + 0.75 * s / 4) for s in range(4)]
    expected += [0.1 * (1 + math.cos(math.pi * s / 6)) / 2 for s in range(8)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * (1 + math.cos(math.pi * 8 / 6)) / 2, rel=1e-12)


@given(split=st.integers(0, 14))
def test_scheduler_state_dict_resumes_exactly(split):
    def build(opt):
        after = lr_scheduler.MultiStepLR(opt, milestones=[6, 10])
        return lr_scheduler.LinearWarmup(opt, warmup_steps=3, after=after)

    straight = lr_sequence(build(our_optimizer()), 15)
    scheduler = build(our_optimizer())
    head = lr_sequence(scheduler, split)
    state = scheduler.state_dict()
    opt = our_optimizer()
    resumed = build(opt)
    resumed.load_state_dict(state)
    assert [g["lr"] for g in opt.param_groups] == resumed.get_last_lr()
    tail = lr_sequence(resumed, 15 - split)
    np.testing.assert_array_equal(np.concatenate([head.reshape(-1, 2), tail.reshape(-1, 2)]), straight)


def test_onecycle_state_round_trip_and_end(tmp_path):
    opt = our_optimizer()
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=6)
    lr_sequence(scheduler, 3)
    tinyconv.save(scheduler.state_dict(), tmp_path / "s.npz")
    other = lr_scheduler.OneCycleLR(our_optimizer(), max_lr=2.0, total_steps=100)
    other.load_state_dict(tinyconv.load(tmp_path / "s.npz"))
    assert other.get_last_lr() == scheduler.get_last_lr() and other.total_steps == 6
    lr_sequence(scheduler, 3)  # to step 6: stepping up to total_steps is allowed, as in torch
    with pytest.raises(ValueError, match="beyond total_steps=6"):
        scheduler.step()


@pytest.mark.parametrize("make, error, match", [
    (lambda o: lr_scheduler.MultiStepLR(o, milestones=[2.5]), TypeError, "milestone must be an integer"),
    (lambda o: lr_scheduler.MultiStepLR(o, milestones=[2], gamma=0), ValueError, "gamma must be > 0"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be > 0"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=-1), ValueError, "eta_min"),
    (lambda o: lr_scheduler.LinearWarmup(o, warmup_steps=-1), ValueError, "warmup_steps"),
    (lambda o: lr_scheduler.LinearWarmup(o, 3, start_factor=2.0), ValueError, "start_factor"),
    (lambda o: lr_scheduler.LinearWarmup(o, 3, after=lr_scheduler.OneCycleLR(o, 0.1, 10)), ValueError,
     "warms up by itself"),
    (lambda o: lr_scheduler.LinearWarmup(o, 3, after=lr_scheduler.MultiStepLR(our_optimizer(), [1])),
     ValueError, "same optimizer"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[0.1], total_steps=10), ValueError, "1 max_lr values for 2"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"), ValueError,
     "anneal_strategy"),
    (lambda o: lr_scheduler.CosineAnnealingLR(object(), T_max=3), TypeError, "expected an Optimizer"),
])
def test_scheduler_arguments_are_validated(make, error, match):
    with pytest.raises(error, match=match):
        make(our_optimizer())


def test_scheduler_load_state_dict_rejects_foreign_state():
    scheduler = lr_scheduler.CosineAnnealingLR(our_optimizer(), T_max=5)
    with pytest.raises(ValueError, match="expected keys"):
        scheduler.load_state_dict(lr_scheduler.MultiStepLR(our_optimizer(), [2]).state_dict())


def test_scalar_parameter_state_stays_an_array():
    p = nn.Parameter(np.array(1.5))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.array(0.3)
    opt.step()
    fresh = optim.Adam([p], lr=0.1)
    fresh.load_state_dict(opt.state_dict())
    assert isinstance(fresh.state[p]["exp_avg"], np.ndarray) and fresh.state[p]["step"] == 1
    p.grad = np.array(0.3)
    fresh.step()
    assert fresh.state[p]["step"] == 2 and fresh.state[p]["exp_avg"] != opt.state[p]["exp_avg"]
