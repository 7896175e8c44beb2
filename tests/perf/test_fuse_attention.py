"""Attention exported by both torch exporters becomes F.scaled_dot_product_attention, and the
generated module still matches onnxruntime."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch

from nnport.convert import generate_torch
from util import F32, assert_matches_ort


class Attn(torch.nn.Module):
    def __init__(self, d=16, heads=2, mul=False, mask=True):
        super().__init__()
        self.h, self.d, self.mul, self.mask = heads, d, mul, mask
        self.qkv = torch.nn.Linear(d, 3 * d)

    def forward(self, x, m):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.h, self.d // self.h).permute(2, 0, 3, 1, 4)
        if self.mul:
            scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(self.d // self.h))
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d // self.h)
        if self.mask:
            scores = scores + (1.0 - m[:, None, None, :]) * -10000.0
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, self.d)


class SdpaModule(torch.nn.Module):
    def forward(self, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def _export(module, args, names, dynamo, tmp_path):
    path = tmp_path / "m.onnx"
    torch.onnx.export(module.eval(), args, str(path), dynamo=dynamo, input_names=names,
                      opset_version=18 if dynamo else 17)
    return onnx.load(str(path))


def _feeds(model, args):
    return {i.name: a.numpy() for i, a in zip(model.graph.input, args)}


@pytest.mark.parametrize("mul", [False, True])
@pytest.mark.parametrize("mask", [False, True])
def test_torchscript_attention_fuses(tmp_path, mul, mask):
    torch.manual_seed(0)
    x, m = torch.randn(2, 5, 16), (torch.rand(2, 5) > 0.3).float()
    model = _export(Attn(mul=mul, mask=mask), (x, m), ["x", "m"], False, tmp_path)
    source, _ = generate_torch(model)
    assert source.count("F.scaled_dot_product_attention(") == 1, source
    assert ("attn_mask=" in source) == mask
    assert ".softmax(" not in source and "F.softmax" not in source
    assert_matches_ort(model, _feeds(model, (x, m)))


def test_dynamo_attention_fuses(tmp_path):
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    args = (torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8))
    model = _export(SdpaModule(), args, ["q", "k", "v"], True, tmp_path)
    source, _ = generate_torch(model)
    assert "F.scaled_dot_product_attention(" in source, source
    assert_matches_ort(model, _feeds(model, args))


def _attention_graph(second_use: bool):
    from onnx import helper

    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "c"], ["s2"]),
             helper.make_node("Softmax", ["s2"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    outs = [helper.make_tensor_value_info("y", F32, [1, 2, 4, 8])]
    if second_use:
        outs.append(helper.make_tensor_value_info("p", F32, [1, 2, 4, 4]))
    g = helper.make_graph(
        nodes, "attn",
        [helper.make_tensor_value_info(n, F32, [1, 2, 4, 8]) for n in "qkv"], outs,
        [onnx.numpy_helper.from_array(np.array(0.3, np.float32), "c")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_plain_graph_fuses_with_transpose_peeled():
    model = _attention_graph(False)
    source, _ = generate_torch(model)
    assert "F.scaled_dot_product_attention(q, k, v, scale=0.3)" in source, source
    rng = np.random.default_rng(0)
    assert_matches_ort(model, {n: rng.standard_normal((1, 2, 4, 8), dtype=np.float32)
                               for n in "qkv"})


def test_probabilities_used_elsewhere_are_not_fused():
    model = _attention_graph(True)
    source, _ = generate_torch(model)
    assert "scaled_dot_product_attention" not in source
    rng = np.random.default_rng(1)
    assert_matches_ort(model, {n: rng.standard_normal((1, 2, 4, 8), dtype=np.float32)
                               for n in "qkv"})


def test_ncnn_and_locate_paths_see_no_fused_node():
    """The fusion is a torch_emit step: the shared normalized model keeps plain ONNX ops."""
    from nnport.convert import prepare

    model = prepare(_attention_graph(False))
    assert all(n.domain in ("", "ai.onnx") for n in model.graph)


class _BiasAttn(torch.nn.Module):
    """Windows with a learned relative-position bias (as Swin): the exported mask is a folded
    constant."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.randn(2, 4, 4))

    def forward(self, q, k, v):
        s = q @ k.transpose(-2, -1) * 0.5 + self.bias
        return s.softmax(-1) @ v


def test_constant_mask_is_a_buffer_so_the_fused_kernel_runs(tmp_path):
    """F.scaled_dot_product_attention falls back to its math path (slower) when the mask
    requires grad, even under no_grad: a constant mask must be a buffer."""
    import nnport

    torch.manual_seed(0)
    args = tuple(torch.randn(3, 2, 4, 8) for _ in range(3))
    model = _export(_BiasAttn(), args, ["q", "k", "v"], False, tmp_path)
    source, _ = generate_torch(model)
    assert "attn_mask=self." in source and "nn.Parameter" not in source, source
    module = nnport.to_torch(model)
    masks = [b for b in module.buffers() if b.shape == (2, 4, 4)]
    assert len(masks) == 1 and not masks[0].requires_grad
    assert not list(module.parameters())
    assert_matches_ort(model, _feeds(model, args))


class _SplitHeadsAttn(torch.nn.Module):
    """HF ViT/BERT style: k is split into heads with permute(0, 2, 1, 3) and then transposed;
    the TorchScript exporter folds the two into one Transpose(perm=[0, 2, 3, 1])."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.h, self.d = heads, d
        self.query, self.key, self.value = (torch.nn.Linear(d, d) for _ in range(3))

    def heads(self, t):
        b, s, _ = t.shape
        return t.view(b, s, self.h, self.d // self.h).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = (self.heads(self.query(x)), self.heads(self.key(x)),
                   self.heads(self.value(x)))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d // self.h)
        out = torch.matmul(scores.softmax(-1), v).permute(0, 2, 1, 3)
        return out.reshape(x.shape[0], x.shape[1], self.d)


def test_keys_split_into_heads_and_transposed_are_permuted_once(tmp_path):
    """K arrives as one Transpose with perm [0, 2, 3, 1]; the generated code permutes the keys
    once, as the queries and values, instead of permuting and transposing back."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    model = _export(_SplitHeadsAttn(), (x,), ["x"], False, tmp_path)
    assert any(n.op_type == "Transpose" and list(n.attribute[0].ints) == [0, 2, 3, 1]
               for n in model.graph.node)
    source, _ = generate_torch(model)
    assert source.count("F.scaled_dot_product_attention(") == 1, source
    assert ".transpose(-2, -1)" not in source and "permute(0, 2, 3, 1)" not in source, source
    assert source.count("permute(0, 2, 1, 3)") == 4, source  # q, k, v and the output
    assert "scale=" not in source, source  # 1/sqrt(8) is SDPA's default for 8-wide heads
    assert_matches_ort(model, _feeds(model, (x,)))


def test_scaled_queries_with_another_user_fold_into_the_scale():
    """BERT exported with TorchScript: Q and Kt are each multiplied by sqrt(scale), and Q also
    feeds the Shape that reshapes the output. Both factors become SDPA's scale; nothing is
    multiplied before it."""
    from onnx import helper

    nodes = [helper.make_node("Transpose", ["q0"], ["q"], perm=[0, 2, 1, 3]),
             helper.make_node("Shape", ["q"], ["qshape"]),
             helper.make_node("Mul", ["q", "c"], ["qs"]),
             helper.make_node("Transpose", ["k0"], ["kt"], perm=[0, 2, 3, 1]),
             helper.make_node("Mul", ["kt", "c"], ["kts"]),
             helper.make_node("MatMul", ["qs", "kts"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("Transpose", ["v0"], ["v"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    g = helper.make_graph(
        nodes, "attn",
        [helper.make_tensor_value_info(n, F32, [1, 4, 2, 8]) for n in ("q0", "k0", "v0")],
        [helper.make_tensor_value_info("y", F32, [1, 2, 4, 8]),
         helper.make_tensor_value_info("qshape", onnx.TensorProto.INT64, [4])],
        [onnx.numpy_helper.from_array(np.array(0.5, np.float32), "c")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    source, _ = generate_torch(model)
    assert source.count("F.scaled_dot_product_attention(") == 1, source
    assert "scale=0.25)" in source and "* 0.5" not in source, source
    assert "permute(0, 2, 3, 1)" not in source, source
    rng = np.random.default_rng(2)
    assert_matches_ort(model, {n: rng.standard_normal((1, 4, 2, 8), dtype=np.float32)
                               for n in ("q0", "k0", "v0")})


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = _SplitHeadsAttn()

    def forward(self, x):
        return self.attention(x) + x


def test_attention_output_is_named_attn(tmp_path):
    """In the module tree the fused call's output is ``attn``, not the name of the MatMul it
    replaced, and the tensors made only for it are q, k and v."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    model = _export(_Block(), (x,), ["x"], False, tmp_path)
    source, _ = generate_torch(model)
    assert "attn = F.scaled_dot_product_attention(q, k, v)" in source, source
    assert "k = " in source and ".permute(0, 2, 1, 3)" in source
    assert "matmul" not in source, source
    assert_matches_ort(model, _feeds(model, (x,)))
