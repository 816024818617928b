"""Differential fuzzing of the PyTorch front end: hypothesis draws random modules (an
nn.LSTM/GRU/RNN of any shape, read the ways forwards read it, then a random functional
head), lstmgen reads each through torch.export, and the float64 reference of the IR must
match the module's own forward on inputs of another batch size and length; the C target
must match it too where it implements every layer kind of the model.

CI runs a bounded, derandomised set (LSTMGEN_TORCH_FUZZ_EXAMPLES, default 8). For a long
local run (--hypothesis-show-statistics tells what was drawn):
    LSTMGEN_TORCH_FUZZ_EXAMPLES=300 python -m pytest tests/frontends/test_torch_fuzz.py
"""

from __future__ import annotations

import os

import numpy as np
from support import require_module, targets_match_oracle

import lstmgen
from lstmgen.reference import forward
from lstmgen.verify import error_metrics

require_module("hypothesis", module_level=True)
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("LSTMGEN_TORCH_FUZZ_EXAMPLES", "8"))
TOLERANCE = 1e-5
RECURRENT = ["LSTM", "GRU", "RNN_tanh", "RNN_relu"]
READS = ["last", "sequence", "final_state", "final_states", "mean", "max", "last_steps", "step"]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu", "softplus", "hardsigmoid", "softsign"]


@st.composite
def modules(draw) -> dict:
    """A plain description of a random module (built by `build`)."""
    kind = draw(st.sampled_from(RECURRENT))
    hidden = draw(st.integers(1, 8))
    bidirectional = draw(st.booleans())
    head = []
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["linear", "matmul", "activation", "layer_norm", "dropout"]))
        item = {"op": op, "units": draw(st.integers(1, 6))}
        item["activation"] = draw(st.sampled_from(ACTIVATIONS))
        item["affine"] = op in ("linear", "matmul") and draw(st.booleans())  # y * a + b
        head.append(item)
    return {
        "kind": kind,
        "input_size": draw(st.integers(1, 5)),
        "hidden": hidden,
        "layers": draw(st.integers(1, 2)),
        "bidirectional": bidirectional,
        "batch_first": draw(st.booleans()),
        "bias": draw(st.booleans()),
        "proj": draw(st.integers(0, hidden - 1)) if kind == "LSTM" and hidden > 1 else 0,
        "read": draw(st.sampled_from(READS)),
        "head": head,
        "final": draw(st.sampled_from([None, None, "softmax", "log_softmax"])),
        "example": (draw(st.integers(1, 3)), draw(st.integers(3, 8))),
        "seed": draw(st.integers(0, 2**16)),
    }


def build(torch, spec: dict):
    """The module `spec` describes, in eval mode with random weights."""
    nn, F = torch.nn, torch.nn.functional
    kind = spec["kind"].split("_")[0]
    options = dict(
        num_layers=spec["layers"],
        bias=spec["bias"],
        batch_first=spec["batch_first"],
        bidirectional=spec["bidirectional"],
    )
    if spec["kind"].startswith("RNN"):
        options["nonlinearity"] = spec["kind"].split("_")[1]
    if spec["proj"]:
        options["proj_size"] = spec["proj"]
    directions = 2 if spec["bidirectional"] else 1
    width = (spec["proj"] or spec["hidden"]) * directions
    if spec["read"] == "final_state":
        width //= directions  # h_n[-1]: one direction

    class Fuzzed(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, kind)(spec["input_size"], spec["hidden"], **options)
            self.parts = nn.ModuleList()
            self.weights = nn.ParameterList()
            size = width
            for item in spec["head"]:
                if item["op"] == "linear":
                    self.parts.append(nn.Linear(size, item["units"]))
                    size = item["units"]
                elif item["op"] == "matmul":
                    self.weights.append(nn.Parameter(torch.zeros(size, item["units"])))
                    size = item["units"]
                elif item["op"] == "layer_norm":
                    self.parts.append(nn.LayerNorm(size))

        def forward(self, x):
            out, state = self.rnn(x)
            h_n = state[0] if isinstance(state, tuple) else state
            time = 1 if spec["batch_first"] else 0
            read = spec["read"]
            if read == "last":
                y = out.select(time, -1)
            elif read == "final_state":
                y = h_n[-1]
            elif read == "final_states":
                y = torch.cat([h_n[-2], h_n[-1]], dim=1) if directions == 2 else h_n[-1]
            elif read == "mean":
                y = out.mean(dim=time)
            elif read == "max":
                y = out.max(dim=time)[0]
            elif read == "last_steps":
                y = out[:, -2:] if spec["batch_first"] else out[-2:]
            elif read == "step":
                y = out[:, 1] if spec["batch_first"] else out[1]
            else:
                y = out
            modules, weights = iter(self.parts), iter(self.weights)
            for item in spec["head"]:
                op = item["op"]
                if op in ("linear", "layer_norm"):
                    y = next(modules)(y)
                elif op == "matmul":
                    y = y @ next(weights)
                elif op == "dropout":
                    y = F.dropout(y, 0.25, training=self.training)
                else:
                    y = ACTIVATION_CALLS[item["activation"]](torch, y)
                if item["affine"]:
                    y = y * 0.75 - 0.5
            if spec["final"] == "softmax":
                y = F.softmax(y, dim=-1)
            elif spec["final"] == "log_softmax":
                y = F.log_softmax(y, dim=-1)
            return y

    torch.manual_seed(spec["seed"])
    module = Fuzzed()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.6, 0.6)
    return module.eval()


ACTIVATION_CALLS = {
    "relu": lambda torch, y: torch.relu(y),
    "sigmoid": lambda torch, y: torch.sigmoid(y),
    "tanh": lambda torch, y: torch.tanh(y),
    "elu": lambda torch, y: torch.nn.functional.elu(y),
    "softplus": lambda torch, y: torch.nn.functional.softplus(y),
    "hardsigmoid": lambda torch, y: torch.nn.functional.hardsigmoid(y),
    "softsign": lambda torch, y: torch.nn.functional.softsign(y),
}


def module_forward(torch, module, x, spec):
    """forward on lstmgen-layout x [N, T, D], the result in lstmgen's layout."""
    xt = torch.as_tensor(x if spec["batch_first"] else np.swapaxes(x, 0, 1).copy())
    with torch.no_grad():
        y = module(xt).numpy()
    if y.ndim == 3 and not spec["batch_first"]:
        y = np.swapaxes(y, 0, 1)
    return y


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=modules())
def test_random_modules_match_their_forward(spec, tmp_path_factory):
    torch = require_module("torch")

    module = build(torch, spec)
    rng = np.random.default_rng(spec["seed"])
    batch, steps = spec["example"]
    example = rng.standard_normal((batch, steps, spec["input_size"])).astype(np.float32)
    layout = example if spec["batch_first"] else np.swapaxes(example, 0, 1)
    loaded = lstmgen.extractors.open_model(module, example_input=layout)
    t_len = loaded.ir.timesteps or steps + 4
    x = rng.standard_normal((batch + 2, t_len, spec["input_size"])).astype(np.float32)
    expected = module_forward(torch, module, x, spec)
    _, rel = error_metrics(forward(loaded.ir, x), expected)
    assert rel.max() <= TOLERANCE, (spec, float(rel.max()))
    event(f"{spec['kind']} read {spec['read']}")
    targets_match_oracle(loaded, x, tmp_path_factory.mktemp("fuzz"), targets=("c",))
