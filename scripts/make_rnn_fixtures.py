#!/usr/bin/env python3
"""Writes tests/data/reference_rnn.txt: PyTorch references for recurrent nets.

Two families of cases, all float64, each from its own generator seeded by the
case's name (editing one case leaves the others' numbers unchanged):

  Cells, one step (nn.RNNCell tanh / relu, nn.LSTMCell, nn.GRUCell, with and
  without bias; batch 3, input 4, hidden 5). loss = sum(h seed_h) [+ sum(c
  seed_c)]; first gradients grad.<v> for every input and parameter v; then,
  through create_graph, hess.<v> = d/dv of sum_k sum(grad.<k> sseed.<k>) over
  the same inputs and parameters (a Hessian-vector product).

  Sequence modules (nn.RNN tanh / relu, nn.LSTM, nn.GRU; input 3, hidden 4,
  T 5, batch 3, dropout 0): 1 and 2 layers, with and without an initial
  state, batch_first false and true, bidirectional, and variable lengths
  through pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence(
  total_length=T). loss = sum(output seed_output) + sum(h_n seed_h_n)
  [+ sum(c_n seed_c_n)]; gradients grad.x, grad.h0, grad.c0, grad.<param>.

Every case is also run through a step-by-step forward written here from the
documented cell equations, which must agree with PyTorch's to 1e-12; it gives
the relu pre-activations, asserted away from the kink at 0.

Usage, from anywhere:
    /usr/bin/python3 scripts/make_rnn_fixtures.py [output-dir]
(default: tests/data of this repo). Started with an interpreter without
torch, it re-runs itself with /usr/bin/python3 (Debian's python3-torch).

Format: as scripts/make_reference_fixtures.py (whose write_fixture it uses).
"""

import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()

from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from make_reference_fixtures import write_fixture  # noqa: E402  (needs torch importable first)

DT = torch.float64
# relu's pre-activations must be at least this far from 0: float64 rounding
# in another summation order must not pick the other side of the kink.
KINK_GAP = 1e-3
# The step-by-step forward against PyTorch's kernels.
SELF_CHECK_TOLERANCE = 1e-12

CELL_BATCH, CELL_INPUT, CELL_HIDDEN = 3, 4, 5
SEQ_INPUT, SEQ_HIDDEN, SEQ_T, SEQ_BATCH = 3, 4, 5, 3
VARLEN = [5, 2, 4]  # unsorted on purpose: enforce_sorted=False must restore the batch order

# name: (mode, bias)
CELLS = {
    "rnn_cell_tanh": ("RNN_TANH", True),
    "rnn_cell_tanh_nobias": ("RNN_TANH", False),
    "rnn_cell_relu": ("RNN_RELU", True),
    "rnn_cell_relu_nobias": ("RNN_RELU", False),
    "lstm_cell": ("LSTM", True),
    "lstm_cell_nobias": ("LSTM", False),
    "gru_cell": ("GRU", True),
    "gru_cell_nobias": ("GRU", False),
}

# name: (mode, layers, bidirectional, batch_first, initial_state, lengths or None)
SEQUENCES = {}
for _mode, _prefix in [("RNN_TANH", "rnn_tanh"), ("RNN_RELU", "rnn_relu"), ("LSTM", "lstm"), ("GRU", "gru")]:
    SEQUENCES.update({
        f"{_prefix}_l1": (_mode, 1, False, False, False, None),
        f"{_prefix}_l1_bf_h0": (_mode, 1, False, True, True, None),
        f"{_prefix}_l2_h0": (_mode, 2, False, False, True, None),
        f"{_prefix}_l2_bf": (_mode, 2, False, True, False, None),
        f"{_prefix}_l2_h0_varlen": (_mode, 2, False, False, True, VARLEN),
    })
SEQUENCES.update({
    "lstm_l2_bi_h0": ("LSTM", 2, True, False, True, None),
    "gru_l2_bi_bf": ("GRU", 2, True, True, False, None),
    "rnn_tanh_l1_bi_bf_varlen": ("RNN_TANH", 1, True, True, False, VARLEN),
    "lstm_l2_bi_bf_h0_varlen": ("LSTM", 2, True, True, True, VARLEN),
    "gru_l2_bi_h0_varlen": ("GRU", 2, True, False, True, VARLEN),
})


def uniform(gen, shape, low=-1.0, high=1.0):
    return torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low


# Cases whose first draw put a relu pre-activation within KINK_GAP of 0 draw
# from the seed this many further on.
SEED_OFFSETS = {"rnn_relu_l1_bf_h0": 1}


def case_generator(name):
    return torch.Generator().manual_seed(zlib.crc32(name.encode()) + SEED_OFFSETS.get(name, 0))


def set_parameters(gen, module):
    """Replaces PyTorch's initialisation (which draws from the global
    generator) by draws from the case's; named_parameters' order is fixed."""
    params = dict(module.named_parameters())
    with torch.no_grad():
        for p in params.values():
            p.copy_(uniform(gen, p.shape, -0.6, 0.6))
    return params


# --- the step-by-step forward of the self-check ---

def cell_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh, relu_inputs):
    """One step of PyTorch's documented cell equations (gate order i f g o
    for LSTM, r z n for GRU). Appends relu's pre-activations to relu_inputs."""
    gi = x @ w_ih.T + (b_ih if b_ih is not None else 0)
    gh = h @ w_hh.T + (b_hh if b_hh is not None else 0)
    if mode == "RNN_TANH":
        return torch.tanh(gi + gh), None
    if mode == "RNN_RELU":
        relu_inputs.append(gi + gh)
        return torch.relu(gi + gh), None
    if mode == "LSTM":
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new
    r_i, z_i, n_i = gi.chunk(3, dim=1)
    r_h, z_h, n_h = gh.chunk(3, dim=1)
    r = torch.sigmoid(r_i + r_h)
    z = torch.sigmoid(z_i + z_h)
    n = torch.tanh(n_i + r * n_h)  # r scales W_hn h + b_hn, bias included
    return (1 - z) * n + z * h, None


def stepwise_sequence(mode, params, x_tb, h0, c0, lengths, layers, directions, relu_inputs):
    """The sequence module by hand, time-major: returns (output, h_n, c_n).
    Sequence b runs over steps 0 .. lengths[b]-1; the reverse direction starts
    at its own last step, from h0. Past the end, output is 0 and the state
    stays frozen."""
    steps, batch = x_tb.shape[0], x_tb.shape[1]
    active = torch.tensor([[t < n for n in lengths] for t in range(steps)]).unsqueeze(-1)  # [T, B, 1]
    layer_input = x_tb
    h_n, c_n = [], []
    for layer in range(layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            k = layer * directions + direction
            h = h0[k]
            c = c0[k] if c0 is not None else None
            out = torch.zeros(steps, batch, h.shape[1], dtype=DT)
            order = range(steps - 1, -1, -1) if direction else range(steps)
            for t in order:
                step_relu = []
                h_new, c_new = cell_step(mode, layer_input[t], h, c, params["weight_ih" + suffix],
                                         params["weight_hh" + suffix], params.get("bias_ih" + suffix),
                                         params.get("bias_hh" + suffix), step_relu)
                relu_inputs += [pre[active[t, :, 0]] for pre in step_relu]
                h = torch.where(active[t], h_new, h)
                if c is not None:
                    c = torch.where(active[t], c_new, c)
                out[t] = torch.where(active[t], h_new, torch.zeros_like(h_new))
            outputs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_input = torch.cat(outputs, dim=2)
    return layer_input, torch.stack(h_n), (torch.stack(c_n) if c0 is not None else None)


def check_close(case, what, ours, torchs):
    gap = (ours - torchs).abs().max().item()
    assert gap < SELF_CHECK_TOLERANCE, f"{case}: {what} differs from PyTorch's by {gap}"


def check_relu_gap(case, relu_inputs):
    if relu_inputs:
        gap = min(pre.abs().min().item() for pre in relu_inputs if pre.numel() > 0)
        assert gap > KINK_GAP, f"{case}: a relu pre-activation is {gap} from the kink; change the case's seed"


# --- cells ---

def cell_case(name, mode, bias):
    gen = case_generator(name)
    if mode.startswith("RNN"):
        module = nn.RNNCell(CELL_INPUT, CELL_HIDDEN, bias=bias, nonlinearity=mode[4:].lower())
    else:
        module = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}[mode](CELL_INPUT, CELL_HIDDEN, bias=bias)
    module = module.double()
    params = set_parameters(gen, module)
    x = uniform(gen, (CELL_BATCH, CELL_INPUT)).requires_grad_()
    h0 = uniform(gen, (CELL_BATCH, CELL_HIDDEN)).requires_grad_()
    inputs = {"x": x, "h0": h0}
    if mode == "LSTM":
        inputs["c0"] = uniform(gen, (CELL_BATCH, CELL_HIDDEN)).requires_grad_()
        h, c = module(x, (h0, inputs["c0"]))
        results = {"h": h, "c": c}
    else:
        results = {"h": module(x, h0)}

    relu_inputs = []
    ours_h, ours_c = cell_step(mode, x, h0, inputs.get("c0"), params["weight_ih"], params["weight_hh"],
                               params.get("bias_ih"), params.get("bias_hh"), relu_inputs)
    check_close(name, "h", ours_h, results["h"])
    if mode == "LSTM":
        check_close(name, "c", ours_c, results["c"])
    check_relu_gap(name, relu_inputs)

    seeds = {f"seed_{k}": uniform(gen, v.shape) for k, v in results.items()}
    loss = sum((v * seeds[f"seed_{k}"]).sum() for k, v in results.items())
    variables = {**inputs, **params}
    grads = torch.autograd.grad(loss, list(variables.values()), create_graph=True)
    sseeds = {k: uniform(gen, v.shape) for k, v in variables.items()}
    m = sum((g * sseeds[k]).sum() for k, g in zip(variables, grads))
    hess = torch.autograd.grad(m, list(variables.values()), allow_unused=True)
    hess = [torch.zeros_like(v) if h is None else h for v, h in zip(variables.values(), hess)]

    tensors = list(inputs.items()) + list(params.items()) + list(results.items()) + list(seeds.items())
    tensors += [(f"grad.{k}", g) for k, g in zip(variables, grads)]
    tensors += [(f"sseed.{k}", s) for k, s in sseeds.items()]
    tensors += [(f"hess.{k}", h) for k, h in zip(variables, hess)]
    flags = (f"cell={mode.split('_')[0]} bias={int(bias)} nonlinearity={nonlinearity(mode)} "
             f"batch={CELL_BATCH} input_size={CELL_INPUT} hidden_size={CELL_HIDDEN}")
    return flags, [(f"{name}.{k}", t) for k, t in tensors]


# --- sequence modules ---

def nonlinearity(mode):
    return "relu" if mode == "RNN_RELU" else "tanh"


def sequence_case(name, mode, layers, bidirectional, batch_first, initial_state, lengths):
    gen = case_generator(name)
    directions = 2 if bidirectional else 1
    options = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, dropout=0.0)
    if mode.startswith("RNN"):
        module = nn.RNN(SEQ_INPUT, SEQ_HIDDEN, nonlinearity=nonlinearity(mode), **options)
    else:
        module = {"LSTM": nn.LSTM, "GRU": nn.GRU}[mode](SEQ_INPUT, SEQ_HIDDEN, **options)
    module = module.double()
    params = set_parameters(gen, module)

    x_shape = (SEQ_BATCH, SEQ_T, SEQ_INPUT) if batch_first else (SEQ_T, SEQ_BATCH, SEQ_INPUT)
    # Past a sequence's end x holds random numbers too: they must not matter
    # (the recorded grad.x is 0 there).
    x = uniform(gen, x_shape).requires_grad_()
    state_shape = (layers * directions, SEQ_BATCH, SEQ_HIDDEN)
    inputs = {"x": x}
    if initial_state:
        inputs["h0"] = uniform(gen, state_shape).requires_grad_()
        if mode == "LSTM":
            inputs["c0"] = uniform(gen, state_shape).requires_grad_()
    state = None
    if initial_state:
        state = (inputs["h0"], inputs["c0"]) if mode == "LSTM" else inputs["h0"]

    if lengths is None:
        output, final = module(x, state)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        packed_output, final = module(packed, state)
        output, out_lengths = pad_packed_sequence(packed_output, batch_first=batch_first, total_length=SEQ_T)
        assert out_lengths.tolist() == lengths
    h_n, c_n = final if mode == "LSTM" else (final, None)
    results = {"output": output, "h_n": h_n}
    if c_n is not None:
        results["c_n"] = c_n

    # Self-checks. The last step of each sequence (its own, for variable
    # lengths) is h_n of the last layer; the reverse direction's is step 0.
    full = lengths if lengths is not None else [SEQ_T] * SEQ_BATCH
    out_tb = output.transpose(0, 1) if batch_first else output
    for b, n in enumerate(full):
        check_close(name, f"output at the last step of sequence {b}", out_tb[n - 1, b, :SEQ_HIDDEN],
                    h_n[-directions, b])
        if bidirectional:
            check_close(name, f"reverse output at step 0 of sequence {b}", out_tb[0, b, SEQ_HIDDEN:], h_n[-1, b])
        if n < SEQ_T:
            assert out_tb[n:, b].abs().max().item() == 0, f"{name}: output past the end of sequence {b} is not 0"
    relu_inputs = []
    zeros = torch.zeros(state_shape, dtype=DT)
    x_tb = x.transpose(0, 1) if batch_first else x
    ours = stepwise_sequence(mode, params, x_tb, inputs.get("h0", zeros),
                             inputs.get("c0", zeros) if mode == "LSTM" else None, full, layers, directions,
                             relu_inputs)
    check_close(name, "output", ours[0], out_tb)
    check_close(name, "h_n", ours[1], h_n)
    if c_n is not None:
        check_close(name, "c_n", ours[2], c_n)
    check_relu_gap(name, relu_inputs)

    seeds = {f"seed_{k}": uniform(gen, v.shape) for k, v in results.items()}
    loss = sum((v * seeds[f"seed_{k}"]).sum() for k, v in results.items())
    variables = {**inputs, **params}
    grads = torch.autograd.grad(loss, list(variables.values()))
    grad_x_tb = grads[0].transpose(0, 1) if batch_first else grads[0]
    for b, n in enumerate(full):
        if n < SEQ_T:
            assert grad_x_tb[n:, b].abs().max().item() == 0, f"{name}: grad.x past the end of sequence {b} is not 0"

    tensors = list(inputs.items())
    if lengths is not None:
        tensors.append(("lengths", torch.tensor(lengths, dtype=DT)))
    tensors += list(params.items()) + list(results.items()) + list(seeds.items())
    tensors += [(f"grad.{k}", g) for k, g in zip(variables, grads)]
    flags = (f"mode={mode.split('_')[0]} layers={layers} bidirectional={int(bidirectional)} "
             f"batch_first={int(batch_first)} initial_state={int(initial_state)} "
             f"lengths={','.join(map(str, lengths)) if lengths else 'none'} nonlinearity={nonlinearity(mode)}")
    return flags, [(f"{name}.{k}", t) for k, t in tensors]


DESCRIPTION = f"""
Tensors are named <case>.<name>. One line per case below gives its flags.

Cells (nn.RNNCell / nn.LSTMCell / nn.GRUCell, one step, batch {CELL_BATCH}, input {CELL_INPUT}, hidden {CELL_HIDDEN}):
  inputs x [B, I], h0 [B, H] (and c0 for LSTM); parameters weight_ih, weight_hh (and bias_ih,
  bias_hh when bias=1) as in PyTorch's state_dict (gate rows i f g o for LSTM, r z n for GRU);
  outputs h (and c); loss = sum(h * seed_h) + sum(c * seed_c);
  grad.<v> = d loss / d v for v in x, h0, c0 and every parameter;
  hess.<v> = d/dv of sum_k sum(grad.<k> * sseed.<k>), k and v over the same list
  (the first gradients built with create_graph).
Sequence modules (nn.RNN / nn.LSTM / nn.GRU, input {SEQ_INPUT}, hidden {SEQ_HIDDEN}, T {SEQ_T}, batch {SEQ_BATCH}, dropout 0, bias):
  x is [T, B, I], or [B, T, I] when batch_first=1; h0, c0, h_n, c_n are [layers*directions, B, H]
  (row layer*directions + direction), present only with initial_state=1 (else PyTorch's zeros);
  parameters weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>, each also _reverse
  when bidirectional=1; layer k>0 reads [forward, reverse] outputs of layer k-1 (input 2H).
  output is [T, B, directions*H] (or [B, T, ...]), forward half first.
  lengths=none: the whole batch is T long. Otherwise the tensor 'lengths' (float64 values) holds
  them: pack_padded_sequence(enforce_sorted=False), pad_packed_sequence(total_length=T), so
  output is 0 past each sequence's end, h_n/c_n are each sequence's state at its own last
  step (the reverse direction starts at that step from h0), and x past the end is random and
  ignored (grad.x is 0 there). Batch order is the original one throughout.
  loss = sum(output * seed_output) + sum(h_n * seed_h_n) + sum(c_n * seed_c_n);
  grad.<v> for v in x, h0, c0 (when given) and every parameter.
"""


def main():
    out_dir = fixture_output_dir()
    case_lines, tensors = [], []
    for name, (mode, bias) in CELLS.items():
        flags, recorded = cell_case(name, mode, bias)
        case_lines.append(f"case {name}: {flags}")
        tensors += recorded
    for name, spec in SEQUENCES.items():
        flags, recorded = sequence_case(name, *spec)
        case_lines.append(f"case {name}: {flags}")
        tensors += recorded
    description = DESCRIPTION.strip() + "\n" + "\n".join(case_lines)
    write_fixture(out_dir, "rnn", description, tensors, script="make_rnn_fixtures.py")


if __name__ == "__main__":
    main()
