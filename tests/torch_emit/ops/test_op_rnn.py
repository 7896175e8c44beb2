"""LSTM / GRU / RNN against onnxruntime: the nn.LSTM/nn.GRU/nn.RNN path and the loop helper."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import assert_matches_ort, ort_run, torch_run

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def rnn_model(kind, *, T=5, N=3, I=4, H=6, direction="forward", layout=0, const=True,
              bias=True, seq_lens=None, init_h=False, init_c=False, peep=False, opset=14,
              outputs=("Y", "Y_h", "Y_c"), seed=0, **attrs):
    """One recurrent node; returns (model, feeds)."""
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    G = GATES[kind]
    tensors = {
        "W": rng.standard_normal((D, G * H, I)).astype(np.float32) * 0.5,
        "R": rng.standard_normal((D, G * H, H)).astype(np.float32) * 0.5,
        "B": rng.standard_normal((D, 2 * G * H)).astype(np.float32) * 0.5 if bias else None,
        "sequence_lens": None if seq_lens is None else np.array(seq_lens, np.int32),
        "initial_h": None, "initial_c": None, "P": None,
    }
    state_shape = (N, D, H) if layout == 1 else (D, N, H)
    if init_h:
        tensors["initial_h"] = rng.standard_normal(state_shape).astype(np.float32)
    if init_c:
        tensors["initial_c"] = rng.standard_normal(state_shape).astype(np.float32)
    if peep:
        tensors["P"] = rng.standard_normal((D, 3 * H)).astype(np.float32)
    names = ["W", "R", "B", "sequence_lens", "initial_h"]
    if kind == "LSTM":
        names += ["initial_c", "P"]
    x_shape = (N, T, I) if layout == 1 else (T, N, I)
    feeds = {"X": rng.standard_normal(x_shape).astype(np.float32)}
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    inits, node_in = [], ["X"]
    for n in names:
        v = tensors[n]
        if v is None:
            node_in.append("")
            continue
        node_in.append(n)
        if const:
            inits.append(numpy_helper.from_array(v, n))
            continue
        feeds[n] = v
        inputs.append(helper.make_tensor_value_info(
            n, TensorProto.INT32 if n == "sequence_lens" else TensorProto.FLOAT, v.shape))
    while node_in[-1] == "":
        node_in.pop()
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[: 3 if kind == "LSTM" else 2]]
    while outs[-1] == "":
        outs.pop()
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(kind, node_in, outs, hidden_size=H, direction=direction, **attrs)
    graph = helper.make_graph(
        [node], "g", inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs if o], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model, feeds


def check(model, feeds, layout=0):
    """Compare with onnxruntime; it has no batch-major (layout=1) kernels, so those are
    compared with onnx's reference implementation."""
    if layout == 0:
        return assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)
    from onnx.reference import ReferenceEvaluator

    want = ReferenceEvaluator(model).run(None, feeds)
    got = torch_run(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return got


def source(model):
    return generate_torch(model)[0]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_torch_layer(kind, direction, layout):
    extra = {"linear_before_reset": 1} if kind == "GRU" else {}
    model, feeds = rnn_model(kind, direction=direction, layout=layout, init_h=True,
                             init_c=kind == "LSTM", **extra)
    assert f"nn.{kind}(" in source(model)
    check(model, feeds, layout)


def test_torch_layer_full_sequence_lens_and_only_h():
    model, feeds = rnn_model("LSTM", seq_lens=[5, 5, 5], init_h=True, outputs=("Y_h",))
    src = source(model)
    assert "nn.LSTM(4, 6)" in src and "zeros_like" in src
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


def test_rnn_relu_uses_nn_rnn():
    model, feeds = rnn_model("RNN", activations=["Relu"], bias=False)
    assert "nn.RNN(4, 6, nonlinearity='relu', bias=False)" in source(model)
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_loop_sequence_lens(kind, direction):
    model, feeds = rnn_model(kind, direction=direction, const=False, seq_lens=[5, 2, 3],
                             init_h=True, init_c=kind == "LSTM")
    src = source(model)
    assert "_rnn_run" in src and f"nn.{kind}" not in src
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


def test_loop_batch_major_sequence_lens():
    # onnxruntime has no layout=1 kernel and the reference ignores sequence_lens: compare with
    # onnxruntime on the time-major model, transposing inputs and outputs
    kw = dict(direction="bidirectional", const=False, seq_lens=[1, 5, 4], init_h=True)
    model, feeds = rnn_model("GRU", layout=1, **kw)
    model0, _ = rnn_model("GRU", layout=0, **kw)
    feeds0 = dict(feeds, X=feeds["X"].transpose(1, 0, 2),
                  initial_h=feeds["initial_h"].transpose(1, 0, 2))
    y, y_h = ort_run(model0, feeds0)
    got_y, got_h = torch_run(model, feeds)
    np.testing.assert_allclose(got_y, y.transpose(2, 0, 1, 3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_h, y_h.transpose(1, 0, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_linear_before_reset(lbr):
    model, feeds = rnn_model("GRU", direction="bidirectional", linear_before_reset=lbr)
    assert ("nn.GRU" in source(model)) == bool(lbr)
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


def test_lstm_peepholes_input_forget_clip():
    model, feeds = rnn_model("LSTM", direction="bidirectional", peep=True, init_h=True,
                             init_c=True, input_forget=1, clip=0.7)
    assert "_rnn_run" in source(model)
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


def test_lstm_peepholes():
    model, feeds = rnn_model("LSTM", peep=True, init_c=True)
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,acts,alpha,beta", [
    ("LSTM", ["HardSigmoid", "LeakyRelu", "Affine"], [0.3, 0.05, 0.8], [0.4, 0.1]),
    ("GRU", ["Sigmoid", "ScaledTanh", "HardSigmoid", "Elu"], [1.2, 0.25, 0.9], [0.6, 0.45]),
    ("RNN", ["Softsign"], None, None),
    ("RNN", ["ThresholdedRelu"], [0.1], None),
])
def test_other_activations(kind, acts, alpha, beta):
    attrs = {"activations": acts}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    direction = "bidirectional" if len(acts) in (4, 6) else "forward"
    model, feeds = rnn_model(kind, direction=direction, **attrs)
    assert "_rnn_run" in source(model)
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 22])
def test_opsets(opset):
    model, feeds = rnn_model("LSTM", opset=opset, direction="bidirectional", init_h=True)
    assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 8, bidirectional=True)
        self.gru = torch.nn.GRU(16, 5, bidirectional=True)

    def forward(self, x, h0, c0, g0):
        y, (h, c) = self.lstm(x, (h0, c0))
        z, g = self.gru(y, g0)
        return z, h, c, g


def test_torch_exported_lstm_gru():
    torch.manual_seed(0)
    net = _Net().eval()
    args = (torch.randn(7, 2, 4), torch.randn(2, 2, 8), torch.randn(2, 2, 8), torch.randn(2, 2, 5))
    buf = io.BytesIO()
    torch.onnx.export(net, args, buf, dynamo=False, opset_version=14,
                      input_names=["x", "h0", "c0", "g0"], output_names=["z", "h", "c", "g"])
    model = onnx.load_from_string(buf.getvalue())
    assert {n.op_type for n in model.graph.node} >= {"LSTM", "GRU"}
    src = source(model)
    assert "nn.LSTM(4, 8, bidirectional=True)" in src
    assert "nn.GRU(16, 5, bidirectional=True)" in src
    assert "_rnn_run" not in src
    feeds = {k: v.numpy() for k, v in zip(["x", "h0", "c0", "g0"], args)}
    got = assert_matches_ort(model, feeds, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        want = net(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_loop_helper_scripts(kind):
    import nnport
    from nnport.verify.torch_runner import to_torch_input

    model, feeds = rnn_model(kind, direction="bidirectional", const=False, seq_lens=[5, 2, 3],
                             init_h=True, clip=2.0, activations=None)
    module = nnport.to_torch(model)
    scripted = torch.jit.script(module)
    names = [i.name for i in model.graph.input]
    args = [to_torch_input(feeds[n]) for n in names]
    with torch.no_grad():
        for a, b in zip(module(*args), scripted(*args)):
            torch.testing.assert_close(a, b)
