#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures read by tests/test_reference.cpp.

Four composed float64 expressions (a 2-layer MLP with softmax-cross-entropy,
one LSTM cell step built from primitives, a broadcasting-heavy expression,
and Hessian-vector products of an MNIST-shaped MLP) are evaluated and
differentiated with PyTorch. Each fixture holds the inputs
as well as the results, so the C++ test rebuilds the same expression from
the recorded numbers and needs no PyTorch (and no shared random generator).

Usage, from anywhere:
    /usr/bin/python3 scripts/make_reference_fixtures.py [output-dir]
(default output dir: tests/data next to this script's repo). Any interpreter
works to start it: without torch it re-runs itself with one that has it
(Debian's python3-torch lives in /usr/bin/python3).

Fixture format (tests/data/reference_<case>.txt), one tensor per line:
    name rank d0 ... d{rank-1} v0 v1 ...
values row-major, floats as repr() (the shortest text that reads back to the
exact same double), int64 as integers. Lines starting with '#' are comments.
Names: inputs by their name, forward results by theirs, gradients as
grad_<input>. The C++ test documents the expression next to each case; keep
the two in sync.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()
F = torch.nn.functional
DT = torch.float64


def uniform(gen, shape, low, high):
    return (torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low)


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def format_tensor(name, t):
    t = t.detach()
    dims = list(t.shape)
    flat = t.reshape(-1).tolist()
    if t.dtype == torch.int64:
        values = [str(int(v)) for v in flat]
    else:
        assert all(math.isfinite(v) for v in flat), f"{name} has a non-finite value"
        values = [repr(float(v)) for v in flat]
    return " ".join([name, str(len(dims))] + [str(d) for d in dims] + values)


def write_fixture(out_dir, case, description, tensors, script="make_reference_fixtures.py"):
    """Writes tests/data-style reference_<case>.txt: a header naming PyTorch's
    version, the script that regenerates it and the description, then one
    tensor per line. Every fixture script writes through here."""
    path = os.path.join(out_dir, f"reference_{case}.txt")
    lines = [f"# tapegrad reference fixture '{case}': PyTorch {torch.__version__}, float64.",
             f"# Regenerate: /usr/bin/python3 scripts/{script}",
             "# Format: name rank d0 .. d(rank-1) values (row-major).",
             *(f"# {line}" for line in description.strip().splitlines())]
    lines += [format_tensor(name, t) for name, t in tensors]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path} ({len(tensors)} tensors)")


def min_gap(a, b):
    """Smallest |a - b| over the broadcast: keeps kinks (relu, maximum, max) away
    from ties, so float64 rounding differences cannot pick another branch."""
    return (a - b).abs().min().item()


def case_mlp(gen):
    x = leaf(uniform(gen, (8, 5), -2, 2))
    W1 = leaf(uniform(gen, (7, 5), -1, 1))
    b1 = leaf(uniform(gen, (7,), -0.5, 0.5))
    W2 = leaf(uniform(gen, (3, 7), -1, 1))
    b2 = leaf(uniform(gen, (3,), -0.5, 0.5))
    labels = torch.randint(0, 3, (8,), generator=gen, dtype=torch.int64)

    z1 = F.linear(x, W1, b1)
    assert z1.abs().min().item() > 1e-3, "relu input too close to its kink; change the seed"
    h = torch.relu(z1)
    logits = F.linear(h, W2, b2)
    loss = F.cross_entropy(logits, labels, reduction="mean")
    loss.backward()
    description = """
h = relu(linear(x, W1, b1)); logits = linear(h, W2, b2)
loss = cross_entropy(logits, labels) (mean over the 8 rows)
"""
    return description, [("x", x), ("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2), ("labels", labels),
                         ("logits", logits), ("loss", loss),
                         ("grad_x", x.grad), ("grad_W1", W1.grad), ("grad_b1", b1.grad),
                         ("grad_W2", W2.grad), ("grad_b2", b2.grad)]


def case_lstm(gen):
    hidden = 5
    x = leaf(uniform(gen, (4, 3), -1, 1))
    h0 = leaf(uniform(gen, (4, hidden), -1, 1))
    c0 = leaf(uniform(gen, (4, hidden), -1, 1))
    W_ih = leaf(uniform(gen, (4 * hidden, 3), -0.8, 0.8))
    W_hh = leaf(uniform(gen, (4 * hidden, hidden), -0.8, 0.8))
    b = leaf(uniform(gen, (4 * hidden,), -0.5, 0.5))
    R = uniform(gen, (4, hidden), -1, 1)  # fixed weights of the loss, no gradient

    gates = x @ W_ih.T + h0 @ W_hh.T + b
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h1 = torch.sigmoid(o) * torch.tanh(c1)
    loss = (h1 * R).sum() + (c1 ** 2).mean()
    loss.backward()
    description = """
gates = x W_ih^T + h0 W_hh^T + b; i, f, g, o = gates[:, 0:5], [:, 5:10], [:, 10:15], [:, 15:20]
c1 = sigmoid(f) c0 + sigmoid(i) tanh(g); h1 = sigmoid(o) tanh(c1)
loss = sum(h1 R) + mean(c1^2)   (R is a constant)
"""
    return description, [("x", x), ("h0", h0), ("c0", c0), ("W_ih", W_ih), ("W_hh", W_hh), ("b", b), ("R", R),
                         ("h1", h1), ("c1", c1), ("loss", loss),
                         ("grad_x", x.grad), ("grad_h0", h0.grad), ("grad_c0", c0.grad),
                         ("grad_W_ih", W_ih.grad), ("grad_W_hh", W_hh.grad), ("grad_b", b.grad)]


def case_broadcast(gen):
    a = leaf(uniform(gen, (2, 3, 4), -1.5, 1.5))
    b = leaf(uniform(gen, (3, 1), -1, 1))
    c = leaf(uniform(gen, (4,), -1, 1))
    d = leaf(uniform(gen, (2, 1, 1), -2, 2))
    R = uniform(gen, (2, 3, 4), -1, 1)  # fixed weights of the loss, no gradient

    assert min_gap(a, c) > 1e-3, "maximum(a, c) too close to a tie; change the seed"
    s = 1 / (1 + torch.exp(-d))                                    # [2,1,1]
    u = (a * b + c) * s                                            # [2,3,4]
    v = u - torch.maximum(a, c)                                    # [2,3,4]
    w = torch.softmax(v, dim=1)                                    # [2,3,4]
    p = torch.pow(a * a + 1, c)                                    # [2,3,4], positive base
    n = torch.sqrt(p.sum(dim=2, keepdim=True))                     # [2,3,1]
    mx = v.amax(dim=0, keepdim=True)                               # [1,3,4]
    assert min_gap(v[0], v[1]) > 1e-3, "max over axis 0 too close to a tie; change the seed"
    mu = (v * b).mean(dim=(0, 2), keepdim=True)                    # [1,3,1]
    z = torch.log(1 + torch.exp(b))                                # [3,1]
    y = w * n + mx / (1 + mu * mu) - z * c + (a - a.mean(dim=-1, keepdim=True)) ** 3 * 0.1  # [2,3,4]
    loss = (y * R).sum()
    loss.backward()
    description = """
s = 1 / (1 + exp(-d)); u = (a b + c) s; v = u - maximum(a, c)
w = softmax(v, axis 1); p = pow(a a + 1, c); n = sqrt(sum(p, axis 2, keepdim))
mx = max(v, axis 0, keepdim); mu = mean(v b, axes {0, 2}, keepdim); z = log(1 + exp(b))
y = w n + mx / (1 + mu mu) - z c + 0.1 pow(a - mean(a, axis -1, keepdim), 3)
loss = sum(y R)   (R is a constant)
"""
    return description, [("a", a), ("b", b), ("c", c), ("d", d), ("R", R),
                         ("y", y), ("loss", loss),
                         ("grad_a", a.grad), ("grad_b", b.grad), ("grad_c", c.grad), ("grad_d", d.grad)]


def case_hvp(gen):
    # The MNIST MLP's shape (784 inputs, 10 classes) with a narrow tanh
    # hidden layer, so that the fixture stays small while every layer has
    # curvature (tanh'' != 0, softmax-cross-entropy's Hessian).
    x = uniform(gen, (4, 784), 0, 1)
    labels = torch.randint(0, 10, (4,), generator=gen, dtype=torch.int64)
    W1 = leaf(uniform(gen, (8, 784), -0.05, 0.05))
    b1 = leaf(uniform(gen, (8,), -0.1, 0.1))
    W2 = leaf(uniform(gen, (10, 8), -0.5, 0.5))
    b2 = leaf(uniform(gen, (10,), -0.1, 0.1))
    params = [W1, b1, W2, b2]
    vs = [uniform(gen, p.shape, -1, 1) for p in params]

    loss = F.cross_entropy(F.linear(torch.tanh(F.linear(x, W1, b1)), W2, b2), labels)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vs))
    hvps = torch.autograd.grad(dot, params)
    description = """
loss = cross_entropy(linear(tanh(linear(x, W1, b1)), W2, b2), labels) (mean over the 4 rows)
g = grad(loss, params, create_graph); hvp_<p> = grad(sum_p <g_p, v_p>, p)   (params W1 b1 W2 b2)
"""
    return description, [("x", x), ("labels", labels), ("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2),
                         ("v_W1", vs[0]), ("v_b1", vs[1]), ("v_W2", vs[2]), ("v_b2", vs[3]), ("loss", loss),
                         ("grad_W1", grads[0]), ("grad_b1", grads[1]), ("grad_W2", grads[2]), ("grad_b2", grads[3]),
                         ("hvp_W1", hvps[0]), ("hvp_b1", hvps[1]), ("hvp_W2", hvps[2]), ("hvp_b2", hvps[3])]


def main():
    out_dir = fixture_output_dir()
    # One seed per case, so editing one case leaves the others' fixtures unchanged.
    cases = [("mlp", case_mlp), ("lstm", case_lstm), ("broadcast", case_broadcast), ("hvp", case_hvp)]
    for seed, (case, build) in enumerate(cases):
        gen = torch.Generator().manual_seed(20240 + seed)
        description, tensors = build(gen)
        write_fixture(out_dir, case, description, tensors)


if __name__ == "__main__":
    main()
