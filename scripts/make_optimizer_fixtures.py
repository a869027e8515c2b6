#!/usr/bin/env python3
"""Writes the PyTorch fixtures read by tests/test_optim.cpp and tests/test_schedule.cpp.

tests/data/optim_trajectories.txt
    A small float64 MLP, h = tanh(linear(x, W1, b1)), logits = linear(h, W2, b2),
    loss = cross_entropy(logits, labels), trained for 20 steps from fixed
    weights on fixed data by each optimizer configuration in CASES (weight
    decay on and off, momentum, Nesterov, centered RMSprop, AMSGrad, AdamW,
    parameter groups, gradient clipping, an L1 penalty, learning-rate
    schedules). For each case it records the loss before every step, the
    gradient norms clipping returned, the learning rate after every step,
    the final parameters and the final optimizer state (PyTorch's own state
    names, which tapegrad's state_dict() uses too).

tests/data/optim_schedules.txt
    The learning rates of two parameter groups (lr 0.1 and 0.02) after each
    of 30 scheduler steps, for each schedule in SCHEDULES; ReduceLROnPlateau
    runs on a fixed metric sequence recorded alongside.

The C++ tests rebuild every case from the recorded inputs and the options
written in their own case tables; keep those tables and CASES / SCHEDULES
in sync, then rerun:
    /usr/bin/python3 scripts/make_optimizer_fixtures.py [output-dir]
Any interpreter works to start it: without torch it re-runs itself with
Debian's /usr/bin/python3.

The format is make_reference_fixtures.py's (one tensor per line:
"name rank d0 .. d(rank-1) values", floats as repr(), '#' starts a comment);
names here are "<case>.<what>".
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()

from make_reference_fixtures import format_tensor  # noqa: E402  (the shared fixture line format)

F = torch.nn.functional
DT = torch.float64
STEPS = 20
PARAM_NAMES = ["W1", "b1", "W2", "b2"]


def make_data():
    gen = torch.Generator().manual_seed(31337)

    def uniform(shape, low, high):
        return torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low

    data = {
        "x": uniform((8, 4), -2, 2),
        "labels": torch.randint(0, 3, (8,), generator=gen, dtype=torch.int64),
        "W1": uniform((6, 4), -0.8, 0.8),
        "b1": uniform((6,), -0.3, 0.3),
        "W2": uniform((3, 6), -0.8, 0.8),
        "b2": uniform((3,), -0.3, 0.3),
    }
    return data


def mlp_loss(data, params):
    W1, b1, W2, b2 = params
    h = torch.tanh(F.linear(data["x"], W1, b1))
    return F.cross_entropy(F.linear(h, W2, b2), data["labels"])


def l1_penalty(params, lam):
    return lam * sum(p.abs().sum() for p in params)


# Each case: (name, make_optimizer(params) -> optimizer, extras). Extras:
#   clip_norm=(max_norm, norm_type)   clip_grad_norm_ after backward, norms recorded
#   clip_value=v                      clip_grad_value_ after backward
#   l1=lam                            loss + lam * sum |p|
#   schedule=make(optimizer)          scheduler.step() after optimizer.step(), lrs recorded
#   plateau=make(optimizer)           scheduler.step(loss) after optimizer.step(), lrs recorded
O = torch.optim
S = torch.optim.lr_scheduler


def groups(params, first, second):
    """Two parameter groups: W1, b1 with options `first`; W2, b2 with `second`."""
    return [dict(params=params[:2], **first), dict(params=params[2:], **second)]


CASES = [
    ("sgd", lambda p: O.SGD(p, lr=0.1), {}),
    ("sgd_wd", lambda p: O.SGD(p, lr=0.1, weight_decay=0.01), {}),
    ("sgd_momentum", lambda p: O.SGD(p, lr=0.05, momentum=0.9, dampening=0.1), {}),
    ("sgd_momentum_wd", lambda p: O.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), {}),
    ("sgd_nesterov", lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True), {}),
    ("sgd_nesterov_wd", lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), {}),
    ("adagrad", lambda p: O.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1), {}),
    ("adagrad_wd", lambda p: O.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01), {}),
    ("rmsprop", lambda p: O.RMSprop(p, lr=0.01, alpha=0.9), {}),
    ("rmsprop_wd", lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, weight_decay=0.01), {}),
    ("rmsprop_momentum", lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5), {}),
    ("rmsprop_momentum_wd", lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.01), {}),
    ("rmsprop_centered", lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True), {}),
    ("rmsprop_centered_wd",
     lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01), {}),
    ("adam", lambda p: O.Adam(p, lr=0.01), {}),
    ("adam_wd", lambda p: O.Adam(p, lr=0.01, weight_decay=0.01), {}),
    ("adam_amsgrad", lambda p: O.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, amsgrad=True), {}),
    ("adam_amsgrad_wd", lambda p: O.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, amsgrad=True, weight_decay=0.01), {}),
    ("adamw", lambda p: O.AdamW(p, lr=0.01, weight_decay=0.0), {}),
    ("adamw_wd", lambda p: O.AdamW(p, lr=0.01, weight_decay=0.1), {}),
    ("adamw_amsgrad_wd", lambda p: O.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True), {}),
    ("groups_sgd", lambda p: O.SGD(groups(p, dict(lr=0.1, momentum=0.9),
                                          dict(lr=0.05, weight_decay=0.05)), lr=0.1), {}),
    ("groups_adam", lambda p: O.Adam(groups(p, dict(lr=0.01),
                                            dict(lr=0.03, weight_decay=0.1, amsgrad=True))), {}),
    ("clip_norm", lambda p: O.SGD(p, lr=0.1, momentum=0.9), dict(clip_norm=(0.5, 2.0))),
    ("clip_norm_inf", lambda p: O.Adam(p, lr=0.01), dict(clip_norm=(0.05, math.inf))),
    ("clip_value", lambda p: O.RMSprop(p, lr=0.01), dict(clip_value=0.02)),
    ("l1", lambda p: O.Adam(p, lr=0.01), dict(l1=0.01)),
    ("step_lr", lambda p: O.SGD(p, lr=0.1, momentum=0.9), dict(schedule=lambda o: S.StepLR(o, step_size=5, gamma=0.5))),
    ("exponential_lr", lambda p: O.RMSprop(p, lr=0.01), dict(schedule=lambda o: S.ExponentialLR(o, gamma=0.9))),
    ("cosine_lr", lambda p: O.Adam(p, lr=0.02),
     dict(schedule=lambda o: S.CosineAnnealingLR(o, T_max=8, eta_min=0.001))),
    ("plateau_lr", lambda p: O.SGD(p, lr=0.5),
     dict(plateau=lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.1, cooldown=1, min_lr=0.1))),
]


def run_case(data, name, make_optimizer, extras):
    params = [data[n].clone().requires_grad_(True) for n in PARAM_NAMES]
    optimizer = make_optimizer(params)
    scheduler = None
    if "schedule" in extras:
        scheduler = extras["schedule"](optimizer)
    if "plateau" in extras:
        scheduler = extras["plateau"](optimizer)
    losses, norms, lrs = [], [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = mlp_loss(data, params)
        if "l1" in extras:
            loss = loss + l1_penalty(params, extras["l1"])
        losses.append(loss.item())
        loss.backward()
        if "clip_norm" in extras:
            max_norm, norm_type = extras["clip_norm"]
            norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type).item())
        if "clip_value" in extras:
            torch.nn.utils.clip_grad_value_(params, extras["clip_value"])
        optimizer.step()
        if "schedule" in extras:
            scheduler.step()
        if "plateau" in extras:
            # Keep the losses away from the better/worse boundary, so that
            # rounding differences cannot flip a decision.
            if math.isfinite(scheduler.best):
                boundary = scheduler.best * (1 - scheduler.threshold)
                assert abs(loss.item() - boundary) > 1e-6, "plateau decision too close to call; change the case"
            scheduler.step(loss.item())
        if scheduler is not None:
            lrs.append(optimizer.param_groups[0]["lr"])

    out = [(f"{name}.loss", torch.tensor(losses, dtype=DT))]
    if norms:
        out.append((f"{name}.norm", torch.tensor(norms, dtype=DT)))
    if lrs:
        out.append((f"{name}.lr", torch.tensor(lrs, dtype=DT)))
    out += [(f"{name}.{n}", p) for n, p in zip(PARAM_NAMES, params)]
    state = optimizer.state_dict()["state"]
    for index in sorted(state):
        for key, value in sorted(state[index].items()):
            if value is None:
                continue
            if key == "step":
                value = torch.tensor(int(value), dtype=torch.int64)
            out.append((f"{name}.state.{index}.{key}", value))
    return out


# Schedules: (name, make(optimizer) -> scheduler, metric_sign): ReduceLROnPlateau
# steps on metric_sign * METRICS (mode max sees the metrics negated), the
# others (metric_sign 0) without a metric.
SCHEDULES = [
    ("step", lambda o: S.StepLR(o, step_size=3, gamma=0.5), 0),
    ("exponential", lambda o: S.ExponentialLR(o, gamma=0.9), 0),
    ("cosine", lambda o: S.CosineAnnealingLR(o, T_max=7, eta_min=0.01), 0),
    ("plateau_min_rel", lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2, threshold=0.1, cooldown=1,
                                                      min_lr=0.01), 1),
    ("plateau_max_abs", lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.3, patience=0, threshold=0.5,
                                                      threshold_mode="abs"), -1),
]

# Improves, stalls, improves by less than 10%, stalls, ...: exercises patience,
# cooldown and both thresholds.
METRICS = [10.0, 9.0, 8.5, 8.4, 8.3, 8.35, 7.0, 6.9, 6.95, 7.1, 7.2, 5.0, 5.0, 5.0, 5.0,
           4.9, 4.0, 4.1, 3.9, 3.8, 3.9, 4.2, 2.0, 2.5, 3.0, 3.5, 1.0, 1.0, 0.99, 0.5]


def run_schedule(name, make, metric_sign):
    dummies = [torch.zeros(1, dtype=DT, requires_grad=True) for _ in range(2)]
    optimizer = O.SGD([dict(params=[dummies[0]], lr=0.1), dict(params=[dummies[1]], lr=0.02)], lr=0.1)
    scheduler = make(optimizer)
    lrs = [[], []]
    for metric in METRICS:
        optimizer.step()
        if metric_sign:
            scheduler.step(metric_sign * metric)
        else:
            scheduler.step()
        for g in range(2):
            lrs[g].append(optimizer.param_groups[g]["lr"])
    return [(f"{name}.lr{g}", torch.tensor(lrs[g], dtype=DT)) for g in range(2)]


def write(path, description, tensors):
    lines = [f"# tapegrad optimizer fixture: PyTorch {torch.__version__}, float64.",
             "# Regenerate: /usr/bin/python3 scripts/make_optimizer_fixtures.py",
             "# Format: name rank d0 .. d(rank-1) values (row-major).",
             *(f"# {line}" for line in description.strip().splitlines())]
    lines += [format_tensor(name, t) for name, t in tensors]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path} ({len(tensors)} tensors)")


def main():
    out_dir = fixture_output_dir()

    data = make_data()
    tensors = list(data.items())
    for name, make_optimizer, extras in CASES:
        tensors += run_case(data, name, make_optimizer, extras)
    write(os.path.join(out_dir, "optim_trajectories.txt"), f"""
h = tanh(linear(x, W1, b1)); loss = cross_entropy(linear(h, W2, b2), labels), {STEPS} steps per case.
<case>.loss: loss before each step; .norm: clip_grad_norm_'s result; .lr: group 0's lr after each step;
<case>.W1 ...: parameters after the last step; <case>.state.<i>.<name>: optimizer.state_dict()["state"].
Cases and options: see CASES in scripts/make_optimizer_fixtures.py.
""", tensors)

    tensors = [("metrics", torch.tensor(METRICS, dtype=DT))]
    for name, make, metric_sign in SCHEDULES:
        tensors += run_schedule(name, make, metric_sign)
    write(os.path.join(out_dir, "optim_schedules.txt"), """
Two SGD groups (lr 0.1 and 0.02); <schedule>.lr<g>: group g's lr after each of the 30 scheduler steps.
ReduceLROnPlateau steps on `metrics` (mode max: on -metrics). Schedules and options: see SCHEDULES in scripts/make_optimizer_fixtures.py.
""", tensors)


if __name__ == "__main__":
    main()
