"""Module tree recovery: models built with plain torch (and transformers from a config) are
exported with both exporters; the generated code has their classes, blocks written once, and
the original state-dict keys for every tensor the ONNX file kept."""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from nnport.convert import prepare  # noqa: E402
from nnport.torch_emit import build_module, generate  # noqa: E402

from tree_models import export_onnx as _export  # noqa: E402
from tree_models import kept_tensors as _kept  # noqa: E402


def _generate(proto, **kw):
    source, state = generate(prepare(proto), **kw)
    return source, build_module(source, state, name="tree_test")


def _outputs(module, example):
    with torch.no_grad():
        out = module(*example)
    return out[0] if isinstance(out, (tuple, list)) else out


CASES = [(m, e) for m in ("resnet", "vit", "yolo", "lstm", "bert") for e in ("dynamo", "ts")]


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", CASES)
def test_tree_matches_original(name, exporter):
    model, example, proto = _export(name, exporter)
    source, module = _generate(proto)
    ref = _outputs(model, example)
    out = _outputs(module, example)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # every tensor the ONNX file kept unchanged is under its original key
    kept = _kept(model, proto)
    keys = set(module.state_dict())
    assert set(kept) <= keys, sorted(set(kept) - keys)[:10]
    # every key the generated module shares with the original (the kept tensors, and the
    # nn.Linear weights the exporter stored transposed under a name of its own) holds the
    # original's tensor: scramble them all, load the original's state dict, get its outputs
    common = [k for k, v in module.state_dict().items()
              if k in model.state_dict() and v.is_floating_point()]
    assert set(kept) <= set(common)
    with torch.no_grad():
        for k in common:
            module.state_dict()[k].copy_(torch.randn_like(module.state_dict()[k]))
    if common:
        assert not torch.allclose(_outputs(module, example), ref, rtol=1e-4, atol=1e-4)
    result = module.load_state_dict(model.state_dict(), strict=False)
    assert not (set(common) & set(result.missing_keys))
    torch.testing.assert_close(_outputs(module, example), ref, rtol=1e-4, atol=1e-4)


def _classes(source: str) -> list[str]:
    return re.findall(r"^class (\w+)\(nn\.Module\):", source, re.M)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["dynamo", "ts"])
def test_resnet_reads_like_torchvision(exporter):
    model, example, proto = _export("resnet", exporter)
    source, module = _generate(proto)
    classes = _classes(source)
    blocks = [c for c in classes if c.startswith("Bottleneck" if exporter == "dynamo" else
                                                  "Layer")]
    assert blocks and len(blocks) < 6, classes  # 6 blocks, identical ones written once
    assert re.search(r"self\.layer1 = nn\.Sequential\(", source)
    assert isinstance(module.layer2, torch.nn.Sequential) and len(module.layer2) == 3
    assert type(module.layer1[1]) is type(module.layer1[2])


def test_torchscript_scopes_give_readable_names():
    """The TorchScript exporter records scopes, not classes.  A block class shared by
    layer1.1 and layer2.1 is not named after one of the lists (it was ``Layer1``); blocks are
    told apart by what they have (``LayerBlockDownsample``); constructor arguments read
    ``in_channels`` when that is unambiguous (were ``conv1_in_channels``); the stem conv is
    named after its scope like the convs inside blocks (``conv1_folded``, was
    ``conv1_Conv_folded``, from the node name /conv1/Conv)."""
    model, example, proto = _export("resnet", "ts")
    source, module = _generate(proto)
    classes = _classes(source)
    assert "LayerBlock" in classes and "LayerBlockDownsample" in classes, classes
    assert not [c for c in classes if re.fullmatch(r"Layer\d+", c)], classes
    assert type(module.layer1[1]) is type(module.layer2[1])
    assert type(module.layer1[0]).__name__.startswith("LayerBlockDownsample")
    assert "def __init__(self, in_channels, out_channels):" in source
    assert "conv1_in_channels" not in source
    assert hasattr(module, "conv1_folded") and "Conv_folded" not in source
    torch.testing.assert_close(_outputs(module, example), _outputs(model, example),
                               rtol=1e-4, atol=1e-4)


class _Res(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1)
        self.se = torch.nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x + torch.sigmoid(self.se(x)) * torch.relu(self.conv(x))


class _Stages(torch.nn.Module):
    """timm's EfficientNet/MobileNet layout: ``blocks`` is a Sequential of Sequentials."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = torch.nn.Sequential(
            torch.nn.Sequential(_Res(8), _Res(8)), torch.nn.Sequential(_Res(8)))

    def forward(self, x):
        return self.blocks(self.stem(x))


@pytest.mark.parametrize("exporter", ["dynamo", "ts"])
def test_nested_sequentials_stay_sequentials(exporter):
    """blocks.1.0 was written as a class ``Sequential_1`` holding ``self.m_0``: the stage's
    members lost their keys (EfficientNet-B0 kept 3% of its keys; ``blocks.1.m_0.se...``)."""
    torch.manual_seed(0)
    model = _Stages().eval()
    x = torch.randn(1, 3, 8, 8)
    proto = _export_module(model, (x,), exporter)
    source, module = _generate(proto)
    assert "m_0" not in source and "class Sequential" not in source, source
    assert isinstance(module.blocks[0], torch.nn.Sequential) and len(module.blocks[0]) == 2
    if exporter == "dynamo":  # the TorchScript exporter renames some weights
        module.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(_outputs(module, (x,)), _outputs(model, (x,)),
                               rtol=1e-4, atol=1e-4)


def _randomize_norms(model, affine=True):
    """BatchNorm statistics (and, with ``affine``, norm weights and biases) made distinct, so
    that folding shows and the exporter does not share equal tensors; ``model`` in eval."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
        if affine and isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


class _BatchNormAct(torch.nn.BatchNorm2d):
    """timm's BatchNormAct2d: a BatchNorm2d subclass with its activation inside."""

    def __init__(self, n):
        super().__init__(n)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        return self.act(super().forward(x))


class _ConvNormAct(torch.nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = _BatchNormAct(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = _ConvNormAct(3, 8)
        self.blocks = torch.nn.Sequential(_ConvNormAct(8, 8), _ConvNormAct(8, 8))

    def forward(self, x):
        return self.blocks(self.stem(x))


def test_fused_conv_goes_to_the_module_owning_its_weight():
    """The dynamo exporter's optimizer fuses BatchNorm into the Conv and gives the new Conv the
    BatchNorm's record while the weight keeps the conv's path: on timm's RegNetY-002 every
    BatchNormAct2d became a class holding a convolution (110 classes, 1,629 lines; 17 and 326
    after).  The Conv belongs to ConvNormAct, as ``conv_folded``; the BatchNorm class keeps
    the activation."""
    torch.manual_seed(0)
    model = _randomize_norms(_Net(), affine=False)
    x = torch.randn(1, 3, 8, 8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        proto = torch.onnx.export(model, (x,), dynamo=True, optimize=True,
                                  verbose=False).model_proto
    assert any("FuseBatchNormIntoConv" in p.value for n in proto.graph.node
               for p in n.metadata_props)  # the case this test is about
    source, module = _generate(proto)
    bn_class = source[source.index("class BatchNormAct("):]
    bn_class = bn_class[:bn_class.index("\nclass ")]
    assert "nn.Conv2d" not in bn_class and "relu" in bn_class, bn_class
    assert isinstance(module.blocks[1].conv_folded, torch.nn.Conv2d)
    assert type(module.blocks[0]) is type(module.blocks[1])
    assert len(_classes(source)) <= 4, _classes(source)
    torch.testing.assert_close(_outputs(module, (x,)), _outputs(model, (x,)),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["dynamo", "ts"])
def test_vit_has_one_block_class(exporter):
    model, example, proto = _export("vit", exporter)
    source, module = _generate(proto)
    classes = _classes(source)
    assert classes.count("Block") == 1 and not any(re.fullmatch(r"Block_\d+", c) for c in classes)
    assert len({type(b) for b in module.blocks}) == 1 and len(module.blocks) == 4
    assert {k for k in module.state_dict() if k.startswith("blocks.0.")} >= {
        "blocks.0.norm1.weight", "blocks.0.norm1.bias"}


@pytest.mark.slow
def test_flat_keeps_one_class():
    model, example, proto = _export("resnet", "ts")
    source, module = _generate(proto, flat=True)
    assert _classes(source) == ["Model"]
    torch.testing.assert_close(_outputs(module, example), _outputs(model, example),
                               rtol=1e-4, atol=1e-4)


def test_no_scopes_falls_back_to_flat_and_says_so():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="a"),
                           helper.make_node("Neg", ["t"], ["y"], name="b")], "g", [x], [y])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    source, module = _generate(proto)
    assert _classes(source) == ["Model"]
    assert "# Flat code: the graph records no module scopes." in source


def test_scoped_names_without_torch():
    """TorchScript-style scoped node names alone (a hand-made graph) give classes and keys."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes, inits, prev = [], [], "x"
    for i in range(3):
        w = f"blocks.{i}.fc.weight"
        inits.append(numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), w))
        nodes += [helper.make_node("Gemm", [prev, w], [f"/blocks.{i}/fc/Gemm_output_0"],
                                   name=f"/blocks.{i}/fc/Gemm", transB=1),
                  helper.make_node("Relu", [f"/blocks.{i}/fc/Gemm_output_0"],
                                   [f"/blocks.{i}/act/Relu_output_0"], name=f"/blocks.{i}/act/Relu"),
                  helper.make_node("Add", [f"/blocks.{i}/act/Relu_output_0", prev],
                                   [f"/blocks.{i}/Add_output_0"], name=f"/blocks.{i}/Add")]
        prev = f"/blocks.{i}/Add_output_0"
    nodes.append(helper.make_node("Identity", [prev], ["y"], name="/Identity"))
    proto = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    source, module = _generate(proto)
    assert _classes(source) == ["Block", "Model"], source
    assert sorted(module.state_dict()) == [f"blocks.{i}.fc.weight" for i in range(3)]
    assert isinstance(module.blocks, torch.nn.Sequential)


@pytest.mark.slow
def test_locate_points_into_the_block_class(tmp_path):
    """verify --locate on tree code: the corrupted weight of block 2 is found, and its line is
    the one the assembler recorded (in the class written once for every block)."""
    from safetensors.numpy import load_file, save_file

    import nnport
    from nnport.verify.locate import locate

    model, example, proto = _export("vit", "ts")
    src = tmp_path / "vit.onnx"
    onnx.save(proto, src)
    py = tmp_path / "out" / "vit.py"
    py.parent.mkdir()
    assert nnport.convert(src, py, verify=False).outputs
    st = py.with_suffix(".safetensors")
    w = load_file(st)
    w["blocks.2.mlp.fc1.weight"][::3, 1::2] += 0.5  # (LayerNorm output sums to 0)
    save_file(w, st)
    res = locate(src, py, chunk_size=16)
    assert res.found and "blocks.2" in res.node, res.lines()
    lines = py.read_text().splitlines()
    assert res.source["file"] == str(py)
    assert "self.fc1(" in lines[res.source["line"] - 1]
    cls = next(ln for ln in reversed(lines[: res.source["line"]]) if ln.startswith("class "))
    assert cls.startswith("class Mlp(")


def test_cli_flat_flag(tmp_path):
    from util import run_cli as run

    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="/blk/act/Relu")],
                          "g", [x], [y])
    src = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src)
    rc, out, err = run("convert", src, tmp_path / "m.py", "--flat")
    assert rc == 0, err
    assert "Module tree" not in (tmp_path / "m.py").read_text()
    rc, out, err = run("convert", src, tmp_path / "m.param", "--flat")
    assert rc == 2 and "--flat" in err


class _Scaled(torch.nn.Module):
    """Not a Linear: its transposed matrix is folded next to a tensor of its own."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8, 16))
        self.scale = torch.nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x):
        return (x @ self.w.t()) * self.scale


class _Attn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = torch.nn.Linear(16, 16, bias=False)
        self.k_proj = torch.nn.Linear(16, 16, bias=False)
        self.other = _Scaled()

    def forward(self, x):
        return self.q_proj(x) * self.k_proj(x).sum(-1, keepdim=True), self.other(x)


@pytest.mark.parametrize("exporter", ["dynamo", "ts"])
def test_bias_free_linear_keeps_its_key(exporter):
    torch.manual_seed(0)
    model = _Attn().eval()
    x = torch.randn(2, 3, 16)
    proto = _export_module(model, (x,), exporter)
    source, module = _generate(proto)
    keys = set(module.state_dict())
    # the projections' exporter-named transposed weights are the original nn.Linear weights
    assert {"q_proj.weight", "k_proj.weight"} <= keys, sorted(keys)
    assert "other.w" not in keys and "other.weight" not in keys, sorted(keys)
    with torch.no_grad():
        for k in ("q_proj.weight", "k_proj.weight"):
            module.state_dict()[k].zero_()
        module.load_state_dict(model.state_dict(), strict=False)
        for got, ref in zip(module(x), model(x)):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def _export_module(model, example, exporter):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            return torch.onnx.export(model, example, dynamo=True, verbose=False).model_proto
        buf = io.BytesIO()
        torch.onnx.export(model, example, buf, dynamo=False, opset_version=17)
        return onnx.load_from_string(buf.getvalue())


class _Wrapper(torch.nn.Module):
    """Holds the model as ``attr`` and calls it (what nn.DataParallel does on one device);
    ``scale``: computes something of its own too (then it is a model, not a wrapper)."""

    def __init__(self, inner, attr="module", scale=False):
        super().__init__()
        setattr(self, attr, inner)
        self.attr, self.scale = attr, scale

    def forward(self, x):
        y = getattr(self, self.attr)(x)
        return y * 2 if self.scale else y


WRAPPED = [("vit", "dynamo", "DataParallel"), ("yolo", "ts", "module"), ("resnet", "dynamo", "model")]


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter,wrapper", WRAPPED)
def test_wrapper_prefix_is_dropped(name, exporter, wrapper):
    from tree_models import build

    inner, example = build(name)
    if wrapper == "DataParallel":
        outer, prefix = torch.nn.DataParallel(inner).eval(), "module."
    else:
        outer, prefix = _Wrapper(inner, wrapper).eval(), wrapper + "."
    proto = _export_module(outer, example, exporter)
    kept = _kept(outer, proto)
    assert kept and all(k.startswith(prefix) for k in kept)  # the exporter kept the prefix
    source, module = _generate(proto)
    assert f"# Without the prefix '{prefix}' that every path had" in source
    keys = set(module.state_dict())
    assert not any(k.startswith(prefix) for k in keys), sorted(keys)[:5]
    assert {k.removeprefix(prefix) for k in kept} <= keys
    # the model inside is Model: its own classes, not a Model holding one child
    assert not re.search(rf"self\.{re.escape(prefix[:-1])} = ", source)
    docs = [ln for ln in source.splitlines() if ln.lstrip().startswith('"""')]
    assert not [d for d in docs if re.search(rf"(?<![\w.]){re.escape(prefix)}", d)], docs
    # as the header says: the wrapper's weights, prefix removed, load and give its outputs
    with torch.no_grad():
        for k in kept:
            module.state_dict()[k.removeprefix(prefix)].zero_()
        module.load_state_dict({k.removeprefix(prefix): v for k, v in outer.state_dict().items()},
                               strict=False)
        torch.testing.assert_close(_outputs(module, example), _outputs(outer, example),
                                   rtol=1e-4, atol=1e-4)


def test_wrapper_that_computes_keeps_its_prefix():
    from tree_models import build

    inner, example = build("yolo")
    outer = _Wrapper(inner, "module", scale=True).eval()
    source, module = _generate(_export_module(outer, example, "dynamo"))
    assert "Without the prefix" not in source
    assert any(k.startswith("module.") for k in module.state_dict())
    torch.testing.assert_close(_outputs(module, example), _outputs(outer, example),
                               rtol=1e-4, atol=1e-4)


class _LayerNorm2d(torch.nn.LayerNorm):
    """timm's LayerNorm2d: an nn.LayerNorm subclass over the channels of NCHW."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = torch.nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                                           self.eps)
        return x.permute(0, 3, 1, 2)


class _PreAct(torch.nn.Module):
    """DenseNet's layer: BatchNorm + ReLU before the conv, so nothing fuses the BatchNorm."""

    def __init__(self, c):
        super().__init__()
        self.norm1 = _BatchNormAct(c)
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm2 = _LayerNorm2d(c)

    def forward(self, x):
        return self.norm2(self.conv1(self.norm1(x)))


class _PreActNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(_PreAct(4), _PreAct(4), _PreAct(4))

    def forward(self, x):
        return self.layers(x)


@pytest.mark.parametrize("exporter", ["dynamo", "ts"])
def test_layer_subclasses_keep_their_keys(exporter):
    """A module that subclasses a torch.nn layer holds the layer's tensors itself
    (``norm1.weight``, ``norm1.running_mean``): on timm's DenseNet-121 each BatchNormAct2d was
    a class of its own holding ``nn.BatchNorm2d`` under its flattened path
    (``norm1.features_denseblock1_denselayer1_norm1.weight``), 99 classes, and ViT's LayerNorm
    under another block's name.  The layer now sits in the parent under the original keys,
    every BatchNorm tensor included, and the activation runs inline."""
    torch.manual_seed(0)
    model = _randomize_norms(_PreActNet())
    x = torch.randn(2, 4, 6, 6)
    proto = _export_module(model, (x,), exporter)
    source, module = _generate(proto)
    sd, msd = model.state_dict(), module.state_dict()
    kept = list(_kept(model, proto))
    assert any(k.endswith("norm1.running_mean") for k in kept), kept  # the case of this test
    for k in kept:
        assert k in msd and torch.equal(msd[k], sd[k]), (k, sorted(msd))
    assert not [c for c in _classes(source) if "Norm" in c], _classes(source)
    assert isinstance(module.layers[0].norm1, torch.nn.BatchNorm2d)
    assert len({type(m) for m in module.layers}) == 1
    torch.testing.assert_close(_outputs(module, (x,)), _outputs(model, (x,)),
                               rtol=1e-4, atol=1e-4)
    module.load_state_dict(sd, strict=False)  # the original's tensors fill the same slots
    torch.testing.assert_close(_outputs(module, (x,)), _outputs(model, (x,)),
                               rtol=1e-4, atol=1e-4)


class _DenseLayer(torch.nn.Module):
    """DenseNet's layer: it concatenates every feature before it."""

    def __init__(self, cin, growth):
        super().__init__()
        self.norm1 = torch.nn.BatchNorm2d(cin)
        self.conv1 = torch.nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1) if isinstance(features, list) else features
        return self.conv1(torch.relu(self.norm1(x)))


class _DenseBlock(torch.nn.Module):
    def __init__(self, cin=4, growth=3, n=4):
        super().__init__()
        self.layers = torch.nn.ModuleList(_DenseLayer(cin + i * growth, growth) for i in range(n))

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(feats if len(feats) > 1 else feats[0]))
        return torch.cat(feats, 1)


@pytest.mark.parametrize("exporter", ["dynamo", "ts"])
def test_blocks_that_concatenate_all_their_inputs_take_a_list(exporter):
    """DenseNet-121's layers each take one input more than the last: one class per input
    count (24 DenseLayer classes, 1,279 lines); the layers from the second on are one class
    that takes the features as a list, as torchvision's and timm's DenseLayer do, and
    ``torch.jit.script`` still accepts the module."""
    torch.manual_seed(0)
    model = _randomize_norms(_DenseBlock())
    x = torch.randn(1, 4, 6, 6)
    proto = _export_module(model, (x,), exporter)
    source, module = _generate(proto)
    assert "features: list[torch.Tensor]" in source, source
    assert len({type(m) for m in module.layers[1:]}) == 1, _classes(source)
    sd, msd = model.state_dict(), module.state_dict()
    for k in _kept(model, proto):
        assert k in msd and torch.equal(msd[k], sd[k]), k
    torch.testing.assert_close(_outputs(module, (x,)), _outputs(model, (x,)),
                               rtol=1e-4, atol=1e-4)
    scripted = torch.jit.script(module)
    torch.testing.assert_close(_outputs(scripted, (x,)), _outputs(model, (x,)),
                               rtol=1e-4, atol=1e-4)
