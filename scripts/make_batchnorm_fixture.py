#!/usr/bin/env python3
"""Writes tests/data/reference_batchnorm.txt, read by tests/test_nn.cpp.

torch.nn.BatchNorm1d in float64, run for a few training steps and then in
evaluation, on [N, C] and on [N, C, L] inputs, and torch.nn.BatchNorm2d the
same way on [N, C, H, W] inputs. The fixture records the inputs, the layer's
γ/β, the running statistics after every training step, the outputs, and the
gradients of loss = sum(y ⊙ R) (R a fixed constant) in one training and one
evaluation step, so the C++ test replays the same sequence with tapegrad's
BatchNorm1d / BatchNorm2d and needs no PyTorch.

Usage, from anywhere:
    /usr/bin/python3 scripts/make_batchnorm_fixture.py [output-dir]
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

from make_reference_fixtures import write_fixture  # noqa: E402  (needs torch importable first)

DT = torch.float64
EPS = 1e-5
MOMENTUM = 0.1


def uniform(gen, shape, low, high):
    return torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low


def run(gen, prefix, channels, batch_shapes, eval_shape, layer=torch.nn.BatchNorm1d):
    """Training steps on batches of the given shapes, then one evaluation.
    Each batch gets its own per-channel offset and scale, so the running
    statistics move visibly and differ between channels."""
    bn = layer(channels, eps=EPS, momentum=MOMENTUM).to(DT)
    with torch.no_grad():
        bn.weight.copy_(uniform(gen, (channels,), 0.5, 1.5))
        bn.bias.copy_(uniform(gen, (channels,), -0.5, 0.5))
    # Every recorded tensor is cloned: bn.weight.grad, for one, is zeroed in
    # place and refilled by the later evaluation step.
    tensors = [(f"{prefix}weight", bn.weight.clone()), (f"{prefix}bias", bn.bias.clone())]
    bn.train()
    for step, shape in enumerate(batch_shapes):
        view = (1, channels) + (1,) * (len(shape) - 2)
        offset = uniform(gen, (channels,), -2, 2).reshape(view)
        scale = uniform(gen, (channels,), 0.5, 3).reshape(view)
        x = (uniform(gen, shape, -1, 1) * scale + offset).requires_grad_(True)
        y = bn(x)
        tensors += [(f"{prefix}x{step}", x), (f"{prefix}y{step}", y),
                    (f"{prefix}running_mean{step}", bn.running_mean.clone()),
                    (f"{prefix}running_var{step}", bn.running_var.clone())]
        if step == 0:  # gradients of one training step
            R = uniform(gen, shape, -1, 1)
            bn.zero_grad()
            (y * R).sum().backward()
            tensors += [(f"{prefix}train_R", R), (f"{prefix}train_grad_x", x.grad.clone()),
                        (f"{prefix}train_grad_weight", bn.weight.grad.clone()),
                        (f"{prefix}train_grad_bias", bn.bias.grad.clone())]
    bn.eval()
    x = uniform(gen, eval_shape, -3, 3).requires_grad_(True)
    y = bn(x)
    R = uniform(gen, eval_shape, -1, 1)
    bn.zero_grad()
    (y * R).sum().backward()
    tensors += [(f"{prefix}eval_x", x), (f"{prefix}eval_y", y), (f"{prefix}eval_R", R),
                (f"{prefix}eval_grad_x", x.grad.clone()), (f"{prefix}eval_grad_weight", bn.weight.grad.clone()),
                (f"{prefix}eval_grad_bias", bn.bias.grad.clone())]
    return tensors


def main():
    out_dir = fixture_output_dir()
    gen = torch.Generator().manual_seed(20250)
    tensors = run(gen, "", 4, [(8, 4), (5, 4), (16, 4)], (3, 4))
    tensors += run(gen, "seq_", 3, [(4, 3, 5), (2, 3, 7)], (2, 3, 4))
    # Last, so that the cases above keep the values drawn for them before it existed.
    tensors += run(gen, "2d_", 3, [(4, 3, 5, 6), (2, 3, 4, 4), (3, 3, 2, 5)], (2, 3, 3, 4),
                   layer=torch.nn.BatchNorm2d)
    description = f"""
torch.nn.BatchNorm1d(C, eps={EPS}, momentum={MOMENTUM}), float64, weight/bias set to recorded values.
[N, C] case (C = 4): train on x0 [8x4], x1 [5x4], x2 [16x4]; after step k: yk, running_meank, running_vark.
Step 0 also: train_grad_* of loss = sum(y0 * train_R). Then eval on eval_x: eval_y, eval_grad_* of sum(eval_y * eval_R).
[N, C, L] case, prefix seq_ (C = 3): the same with x0 [4x3x5], x1 [2x3x7], eval_x [2x3x4].
[N, C, H, W] case, prefix 2d_ (C = 3): torch.nn.BatchNorm2d, x0 [4x3x5x6], x1 [2x3x4x4], x2 [3x3x2x5],
eval_x [2x3x3x4].
"""
    write_fixture(out_dir, "batchnorm", description, tensors, script="make_batchnorm_fixture.py")


if __name__ == "__main__":
    main()
