"""Models as users get them from onnxruntime's tools, which write com.microsoft ops: the
transformers optimizer (BERT, GPT-2), quantize_dynamic (an LSTM, a transformer) and the
MatMulNBits (int4) quantizer (a small Llama).  Each converts and matches onnxruntime."""
import collections
import warnings

import numpy as np
import onnx
import pytest
import torch

import nnport

from .builders import _export, _hf_module

MS = "com.microsoft"


def _contrib_ops(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node
                               if n.domain == MS)


def _text_feeds(b=2, s=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 99, (b, s)).astype(np.int64)
    mask = np.ones((b, s), np.int64)
    mask[0, -2:] = 0  # padding
    return {"input_ids": ids, "attention_mask": mask}


def _export_hf(kind, path):
    f = _text_feeds()
    args = tuple(torch.from_numpy(v) for v in f.values())
    dyn = {n: {0: "batch", 1: "seq"} for n in f}
    onnx.save(_export(_hf_module(kind), args, list(f), ["out"], dyn, dynamo=False), path)
    return path


def _optimized(kind, folder):
    from onnxruntime.transformers.optimizer import optimize_model

    src = _export_hf(kind, folder / f"{kind}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimize_model(str(src), model_type=kind, num_heads=4, hidden_size=32,
                             opt_level=0)
    out = folder / f"{kind}_opt.onnx"
    opt.save_model_to_file(str(out))
    return out


@pytest.fixture(scope="module")
def bert_opt(tmp_path_factory):
    return _optimized("bert", tmp_path_factory.mktemp("bert"))


def _check(path, feeds_list, **tol):
    module = nnport.to_torch(path)
    for feeds in feeds_list:
        rep = nnport.verify(path, module, inputs=feeds, **tol)
        assert rep.ok, rep.lines()


def test_bert_optimized(bert_opt):
    ops = _contrib_ops(bert_opt)
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization",
            "BiasGelu"} <= set(ops), ops
    _check(bert_opt, [_text_feeds(), _text_feeds(3, 13, seed=1)])  # dynamic batch / length


def test_gpt2_optimized(tmp_path):
    out = _optimized("gpt2", tmp_path)
    ops = _contrib_ops(out)
    assert {"SkipLayerNormalization", "FastGelu"} <= set(ops), ops
    _check(out, [_text_feeds(), _text_feeds(1, 5, seed=2)])


def test_transformer_quantize_dynamic(bert_opt, tmp_path):
    """quantize_dynamic after the optimizer, as onnxruntime's docs suggest: QAttention and
    QEmbedLayerNormalization, and MatMulInteger for the feed-forward layers."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = tmp_path / "bert_int8.onnx"
    # reduce_range (7-bit weights) throughout: onnxruntime's own int8 kernels are exact then on
    # every x86 CPU (tests/util.py: S8_EXACT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(bert_opt), str(out), weight_type=QuantType.QInt8, reduce_range=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    ops = _contrib_ops(out)
    assert {"QAttention", "QEmbedLayerNormalization"} <= set(ops), ops
    _check(out, [_text_feeds()])


class _LSTMNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, bidirectional=True)
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


def test_lstm_quantize_dynamic(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    x = torch.randn(6, 2, 8)
    src = tmp_path / "lstm.onnx"
    onnx.save(_export(_LSTMNet().eval(), (x,), ["x"], ["y"], {"x": {0: "time", 1: "batch"}},
                      dynamo=False), src)
    out = tmp_path / "lstm_int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, reduce_range=True)
    assert _contrib_ops(out)["DynamicQuantizeLSTM"] == 1
    # batch 1 and 2: onnxruntime (on 2+ threads) quantizes each sequence's h on its own, as the
    # generated code does; with more sequences than threads it quantizes rows together
    _check(out, [{"x": x.numpy()}, {"x": np.random.default_rng(1).standard_normal(
        (9, 1, 8)).astype(np.float32)}])


@pytest.mark.slow
def test_llama_int4_matmul_nbits(tmp_path):
    import transformers as tf
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=99, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, use_cache=False,
                         attn_implementation="eager")
    core = tf.LlamaModel(cfg).eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.core = core

        def forward(self, ids):
            return self.core(input_ids=ids, use_cache=False, return_dict=False)[0]

    ids = torch.randint(0, 99, (2, 7))
    src = tmp_path / "llama.onnx"
    # the TorchScript exporter has no aten::diff (Llama's mask): the dynamo exporter
    onnx.save(_export(Wrap(), (ids,), ["input_ids"], ["out"],
                      {"input_ids": {0: "batch", 1: "seq"}}, dynamo=True), src)
    q = MatMulNBitsQuantizer(onnx.load(src), block_size=32, is_symmetric=False)
    q.process()
    out = tmp_path / "llama_int4.onnx"
    q.model.save_model_to_file(str(out))
    assert _contrib_ops(out)["MatMulNBits"] >= 7
    res = nnport.convert(str(out), str(tmp_path / "llama.py"))
    assert res.ok
    assert "dequantized here" in (tmp_path / "llama.py").read_text()
    # the 4-bit weights stay packed: the weights file is far smaller than the float model
    assert (tmp_path / "llama.safetensors").stat().st_size < 0.5 * src.stat().st_size
    _check(out, [{"input_ids": ids.numpy()},
                 {"input_ids": np.random.default_rng(3).integers(0, 99, (1, 11))}])


class _ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.w = torch.nn.Parameter(torch.randn(4, 8))

    def forward(self, x):
        y = torch.relu(self.c1(x))
        y = torch.sigmoid(self.c2(y)) + y
        z = torch.matmul(self.w, y.flatten(2) * 0.5)  # a scaled MatMul
        return z.transpose(1, 2) @ torch.ones(4, 3)  # a MatMul of a transposed input


def test_onnxruntime_saved_optimized_model(tmp_path):
    """The graph onnxruntime itself writes with ``optimized_model_filepath`` (extended
    optimizations): Conv + activation -> FusedConv, MatMul with Transpose/scale ->
    FusedMatMul."""
    import onnxruntime as ort

    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    src = tmp_path / "cnn.onnx"
    onnx.save(_export(_ConvNet().eval(), (x,), ["x"], ["y"], {"x": {0: "batch"}},
                      dynamo=False), src)
    out = tmp_path / "cnn_ort.onnx"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    ops = _contrib_ops(out)
    assert ops["FusedConv"] == 2 and ops["FusedMatMul"] >= 1, ops
    _check(out, [{"x": x.numpy()}, {"x": np.random.default_rng(4).standard_normal(
        (3, 3, 8, 8)).astype(np.float32)}])


class _QOpNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        a = torch.nn.functional.leaky_relu(self.c1(x), 0.1)
        b = torch.sigmoid(self.c2(a))
        y = torch.nn.functional.avg_pool2d(torch.cat([a + b, a * b], 1), 2)
        g = torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        return torch.softmax(self.fc(g), -1)


def test_quantize_static_qoperator(tmp_path):
    """quantize_static in the QOperator format: the QLinear family (LeakyRelu, Sigmoid, Add,
    Mul, Concat, AveragePool, GlobalAveragePool, Softmax) and QGemm, one after another (each
    output's shape unknown to onnx's inference)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    src = tmp_path / "net.onnx"
    onnx.save(_export(_QOpNet().eval(), (x,), ["x"], ["y"], {}, dynamo=False, opset=13), src)

    class Reader:
        def __init__(self):
            rng = np.random.default_rng(0)
            self.data = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
                              for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    out = tmp_path / "net_qop.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=True)
    ops = _contrib_ops(out)
    assert {"QLinearLeakyRelu", "QLinearSigmoid", "QLinearAdd", "QLinearMul", "QLinearConcat",
            "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSoftmax",
            "QGemm"} <= set(ops), ops
    _check(out, [{"x": x.numpy()}, {"x": np.random.default_rng(5).standard_normal(
        (1, 3, 8, 8)).astype(np.float32)}])
