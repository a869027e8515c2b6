#!/usr/bin/env python3
"""Writes tests/data/reference_conv.txt, read by tests/test_conv.cpp.

torch.nn.functional.conv2d, conv_transpose2d and conv1d in float64 on a grid
of shapes, strides, paddings, dilations and groups. For each case the
fixture records the inputs x, w (and b), a fixed output weighting R, the
output y, and the gradients of loss = sum(y * R) with respect to x, w and b.
The 2-D convolutions also record second derivatives: with (gx, gw) those
gradients built with create_graph, the gradients hx, hw of
M = sum(gx * S) + sum(gw * Q) with respect to x and w (S, Q fixed), which
is what a gradient penalty or a Hessian-vector product computes.

Usage, from anywhere:
    /usr/bin/python3 scripts/make_conv_fixtures.py [output-dir]
(default: tests/data of this repo). Started with an interpreter without
torch, it re-runs itself with /usr/bin/python3 (Debian's python3-torch).

Format: as scripts/make_reference_fixtures.py (whose write_fixture it uses),
one tensor per line: name rank d0 ... d{rank-1} v0 v1 ... (repr floats).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()

import torch.nn.functional as F  # noqa: E402

from make_reference_fixtures import write_fixture  # noqa: E402  (needs torch importable first)

DT = torch.float64

# name: (x shape, w shape, stride, padding, dilation, groups, bias)
CONV2D = {
    "plain": ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1, True),
    "strided_grouped": ((2, 4, 8, 7), (6, 2, 3, 2), (2, 1), (1, 0), 1, 2, True),
    "dilated": ((1, 2, 9, 9), (3, 2, 3, 3), 2, 2, 2, 1, False),
    "depthwise": ((2, 4, 5, 5), (4, 1, 3, 3), 1, 1, 1, 4, True),
    "pointwise": ((3, 5, 4, 4), (2, 5, 1, 1), 1, 0, 1, 1, True),
    "mixed": ((2, 2, 6, 5), (4, 1, 2, 3), (1, 2), (0, 1), (2, 1), 2, False),
    "kernel_fills_input": ((1, 1, 3, 3), (2, 1, 5, 5), 1, 1, 1, 1, True),
}
# name: (x shape, w shape, stride, padding, output_padding, dilation, groups, bias)
CONV_TRANSPOSE2D = {
    "upsample": ((2, 4, 3, 3), (4, 3, 3, 3), 2, 1, 1, 1, 1, True),
    "grouped": ((1, 4, 4, 5), (4, 1, 2, 3), (1, 2), (0, 1), (0, 1), (2, 1), 2, False),
}
# name: (x shape, w shape, stride, padding, dilation, groups, bias)
CONV1D = {
    "strided": ((2, 3, 10), (4, 3, 3), 2, 1, 1, 1, True),
    "dilated_grouped": ((1, 4, 9), (4, 2, 2), 1, 0, 3, 2, False),
}


def uniform(gen, shape, low=-1.0, high=1.0):
    return (torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low).requires_grad_()


def first_order(gen, prefix, op, x_shape, w_shape, bias, second_order, **options):
    x = uniform(gen, x_shape)
    w = uniform(gen, w_shape)
    b = uniform(gen, (op_output_channels(op, w_shape, options),)) if bias else None
    y = op(x, w, b, **options)
    r = torch.rand(y.shape, generator=gen, dtype=DT) * 2 - 1
    inputs = (x, w) + ((b,) if bias else ())
    grads = torch.autograd.grad((y * r).sum(), inputs, create_graph=second_order)
    out = [("x", x), ("w", w)] + ([("b", b)] if bias else []) + [("R", r), ("y", y), ("grad_x", grads[0]),
                                                                  ("grad_w", grads[1])]
    if bias:
        out.append(("grad_b", grads[2]))
    if second_order:
        s = torch.rand(x.shape, generator=gen, dtype=DT) * 2 - 1
        q = torch.rand(w.shape, generator=gen, dtype=DT) * 2 - 1
        m = (grads[0] * s).sum() + (grads[1] * q).sum()
        hx, hw = torch.autograd.grad(m, (x, w))
        out += [("S", s), ("Q", q), ("hess_x", hx), ("hess_w", hw)]
    return [(prefix + name, t) for name, t in out]


def op_output_channels(op, w_shape, options):
    if op is F.conv_transpose2d:
        return w_shape[1] * options.get("groups", 1)
    return w_shape[0]


def main():
    out_dir = fixture_output_dir()
    gen = torch.Generator().manual_seed(20261202)
    tensors = []
    for name, (xs, ws, s, p, d, g, bias) in CONV2D.items():
        tensors += first_order(gen, f"conv2d_{name}_", F.conv2d, xs, ws, bias, True, stride=s, padding=p,
                               dilation=d, groups=g)
    for name, (xs, ws, s, p, op, d, g, bias) in CONV_TRANSPOSE2D.items():
        tensors += first_order(gen, f"conv_transpose2d_{name}_", F.conv_transpose2d, xs, ws, bias, True, stride=s,
                               padding=p, output_padding=op, dilation=d, groups=g)
    for name, (xs, ws, s, p, d, g, bias) in CONV1D.items():
        tensors += first_order(gen, f"conv1d_{name}_", F.conv1d, xs, ws, bias, False, stride=s, padding=p,
                               dilation=d, groups=g)
    description = """
Per case <op>_<case>_: x, w, [b], R, y = op(x, w, b), grad_* of sum(y * R);
2-D ops also S, Q and hess_x, hess_w = d/d(x, w) of sum(grad_x * S) + sum(grad_w * Q).
Options per case: see CONV2D, CONV_TRANSPOSE2D and CONV1D in the script.
"""
    write_fixture(out_dir, "conv", description, tensors, script="make_conv_fixtures.py")


if __name__ == "__main__":
    main()
