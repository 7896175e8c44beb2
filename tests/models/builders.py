"""Whole models for the model-level tests and ``benchmarks/verified_models.py``, built in-process.

Nothing here downloads anything:

* ``light_*``: the nine ONNX model-zoo graphs shipped in ``onnx/backend/test/data/light`` (weights
  stored as ``ConstantOfShape(0.02)``) given seeded random weights of a sensible scale.
* ``torch_*``: small PyTorch models exported with ``torch.onnx.export`` through the TorchScript
  exporter (``dynamo=False``) and the dynamo exporter (``dynamo=True``), with dynamic batch/H/W.
* ``hf_*``: transformers models (BERT, GPT-2, T5 encoder, ViT) built from small configs with
  random weights, exported both ways with dynamic batch and sequence.
* ``old_opset_*``, ``paddle_style``, ``tf_style``, ``const_weights``: hand-written graphs in
  the styles of old converters and other exporters.

Every case is a :class:`ModelCase`; :func:`all_cases` lists them.  ``case.model()`` builds (and
caches) the ModelProto; ``case.feeds(i)`` gives the inputs for shape variant ``i`` (variant 1
uses different sizes for the dynamic dims).
"""
from __future__ import annotations

import functools
import io
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT_NAMES = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
               "shufflenet", "squeezenet", "vgg19", "zfnet512"]


@dataclass
class ModelCase:
    name: str
    source: str  # where the model comes from / which exporter wrote it
    build: Callable[[], onnx.ModelProto]
    make_feeds: Callable[[int], dict]  # shape variant -> {input name: ndarray}
    dynamic: bool = False  # variant 1 uses other sizes for the dynamic dims
    slow: bool = False
    rtol: float | None = None
    atol: float | None = None
    needs: tuple = ()  # python modules the builder needs (tests skip without them)

    def model(self) -> onnx.ModelProto:
        return _cached_build(self.name, self.build)

    def feeds(self, variant: int = 0) -> dict:
        return self.make_feeds(variant)


_CACHE: dict[str, onnx.ModelProto] = {}


def _cached_build(name, build):
    if name not in _CACHE:
        _CACHE[name] = build()
    return _CACHE[name]


def _rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# (a) the "light" model zoo with random weights
# --------------------------------------------------------------------------------------------

def _weight_for(shape, consumers, rng):
    """A random float32 tensor for a weight of ``shape`` used as ``consumers``
    [(op_type, input index)]."""
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape)) if shape else 1
    op, idx = consumers[0] if consumers else ("", -1)

    def normal(std):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def uniform(lo, hi):
        return rng.random(shape, dtype=np.float32) * np.float32(hi - lo) + np.float32(lo)

    if op in ("Conv", "ConvTranspose") and idx == 1:
        fan_in = n // shape[0] if shape and shape[0] else 1
        return normal(np.sqrt(2.0 / max(fan_in, 1)))
    if op == "Gemm" and idx == 1:
        fan_in = shape[1] if len(shape) == 2 else n  # transB=1 in the zoo models: (out, in)
        return normal(np.sqrt(1.0 / max(fan_in, 1)))
    if op == "BatchNormalization":
        if idx in (1, 4):  # scale, variance: positive, around 1
            return uniform(0.5, 1.5)
        return normal(0.1)  # bias, mean
    if op == "Mul":  # affine "BN" as Mul/Add in the caffe2 exports
        return uniform(0.5, 1.5)
    return normal(0.1)


def randomize_constant_of_shape(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Replace every ``ConstantOfShape(const shape)`` by a seeded random initializer."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    rng = _rng(seed)
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node.op_type, i))
    keep_nodes, new_inits, dropped = [], [], set()
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = numpy_helper.to_array(inits[node.input[0]])
            value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"),
                         np.zeros(1, np.float32))
            arr = _weight_for(shape, consumers.get(node.output[0], []), rng).astype(value.dtype)
            new_inits.append(numpy_helper.from_array(arr, node.output[0]))
            dropped.add(node.input[0])
            continue
        keep_nodes.append(node)
    still_used = {n for node in keep_nodes for n in node.input}
    dropped -= still_used
    del g.node[:]
    g.node.extend(keep_nodes)
    kept = [t for t in g.initializer if t.name not in dropped]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    old_inputs = [i for i in g.input if i.name not in dropped]
    del g.input[:]
    g.input.extend(old_inputs)
    if m.ir_version < 4:  # IR 3: every initializer is also a graph input
        for t in new_inits:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    _calibrate_logits(m, {t.name for t in new_inits})
    onnx.checker.check_model(m)
    return m


def _calibrate_logits(m: onnx.ModelProto, ours: set, target_std: float = 2.0):
    """Rescale the layer feeding the final Softmax so its logits have a std of ``target_std``
    (random weights mixed with the zoo's trained BN statistics can blow activations up, and a
    saturated one-hot softmax would hide numerical differences)."""
    import onnxruntime as ort

    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    soft = [n for n in g.node if n.op_type == "Softmax"]
    if not soft or soft[0].input[0] not in producer:
        return
    last = producer[soft[0].input[0]]
    if last.op_type not in ("Gemm", "Conv") or last.input[1] not in ours:
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    probe.graph.output.append(helper.make_tensor_value_info(last.output[0], TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inits = {t.name for t in g.initializer}
    feeds = {}
    rng = _rng(99)
    for i in g.input:
        if i.name not in inits:
            feeds[i.name] = rng.standard_normal(
                [d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
    logits = sess.run([last.output[0]], feeds)[0]
    std = float(np.std(logits))
    if not np.isfinite(std) or std == 0:
        return
    factor = target_std / std
    for t in g.initializer:
        if t.name in last.input[1:]:
            arr = numpy_helper.to_array(t) * np.float32(factor)
            t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    return randomize_constant_of_shape(onnx.load(os.path.join(LIGHT_DIR, f"light_{name}.onnx")), seed)


def _light_feeds(name):
    def feeds(variant=0):
        model = onnx.load(os.path.join(LIGHT_DIR, f"light_{name}.onnx"), load_external_data=False)
        inits = {t.name for t in model.graph.initializer}
        rng = _rng(100 + variant)
        out = {}
        for i in model.graph.input:
            if i.name in inits:
                continue
            shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
            out[i.name] = rng.standard_normal(shape).astype(np.float32)
        return out
    return feeds


# --------------------------------------------------------------------------------------------
# (b) small PyTorch models exported with torch.onnx.export
# --------------------------------------------------------------------------------------------

def _torch_models():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def randomize_bn(module, seed):
        g = torch.Generator().manual_seed(seed)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        return module

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.down is None else self.down(x)))

    class TinyResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.layers = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.layers(self.stem(x))
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
            return self.fc(x)

    class SE(nn.Module):
        def __init__(self, c, r=4):
            super().__init__()
            self.fc1 = nn.Conv2d(c, c // r, 1)
            self.fc2 = nn.Conv2d(c // r, c, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, expand, stride):
            super().__init__()
            mid = cin * expand
            self.use_res = stride == 1 and cin == cout
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.Hardswish(),
                nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                nn.Hardswish(), SE(mid),
                nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.body(x)
            return x + y if self.use_res else y

    class TinyMobileNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                      nn.Hardswish())
            self.blocks = nn.Sequential(InvertedResidual(16, 16, 2, 1), InvertedResidual(16, 24, 3, 2),
                                        InvertedResidual(24, 24, 3, 1))
            self.head = nn.Sequential(nn.Conv2d(24, 64, 1), nn.Hardswish(), nn.Dropout(0.2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.head(self.blocks(self.stem(x)))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def cbr(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU())

    class TinyUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1 = cbr(3, 8)
            self.enc2 = cbr(8, 16)
            self.mid = cbr(16, 32)
            self.up2 = nn.ConvTranspose2d(32, 16, 2, 2)
            self.dec2 = cbr(32, 16)
            self.dec1 = cbr(16 + 8, 8)
            self.out = nn.Conv2d(8 + 8, 2, 1)

        def forward(self, x):
            e1 = self.enc1(x)                       # H
            e2 = self.enc2(F.max_pool2d(e1, 2))     # H/2
            m = self.mid(F.max_pool2d(e2, 2))       # H/4
            d2 = self.dec2(torch.cat([self.up2(m), e2], 1))            # H/2
            d1 = F.interpolate(d2, scale_factor=2.0, mode="nearest")    # H
            d1 = self.dec1(torch.cat([d1, e1], 1))
            side = F.interpolate(F.avg_pool2d(e1, 2), scale_factor=2.0, mode="bilinear",
                                 align_corners=False)
            return self.out(torch.cat([d1, side], 1))

    class DetectionHead(nn.Module):
        anchors = 3

        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(),
                                          nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
            self.pred = nn.Conv2d(16, self.anchors * 5, 1)

        def forward(self, x):
            f = self.pred(self.backbone(x))
            n, _, h, w = f.shape
            f = f.view(n, self.anchors, 5, h, w).permute(0, 1, 3, 4, 2).reshape(n, -1, 5)
            ys = torch.arange(h, dtype=torch.float32, device=x.device)
            xs = torch.arange(w, dtype=torch.float32, device=x.device)
            gy = ys.view(1, h, 1).expand(self.anchors, h, w)
            gx = xs.view(1, 1, w).expand(self.anchors, h, w)
            grid = torch.stack([gx, gy], -1).reshape(1, -1, 2).expand(n, -1, -1)
            centers = (torch.sigmoid(f[..., :2]) + grid) * (x.shape[-1] / w)
            sizes = torch.exp(f[..., 2:4].clamp(max=4.0)) * 8.0
            boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], -1)
            scores = torch.sigmoid(f[..., 4])
            top, idx = scores.topk(10, dim=1)
            picked = torch.gather(boxes, 1, idx.unsqueeze(-1).expand(-1, -1, 4))
            return top, picked, idx

    return {
        "resnet": (TinyResNet, ("batch", "height", "width"), (2, 3, 64, 64), (3, 3, 96, 80)),
        "mobilenet": (TinyMobileNet, ("batch", "height", "width"), (2, 3, 64, 64), (1, 3, 96, 128)),
        "unet": (TinyUNet, ("batch", "height", "width"), (1, 3, 32, 32), (2, 3, 48, 64)),
        "detect": (DetectionHead, ("batch", "height", "width"), (2, 3, 64, 64), (1, 3, 96, 128)),
    }, randomize_bn


def _export(module, args, input_names, output_names, dynamic: dict, dynamo: bool,
            opset: int | None = None) -> onnx.ModelProto:
    """Export with dynamic dims: ``dynamic`` = {input name: {axis: dim name}}."""
    import torch

    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = []
            for name in input_names:  # positional: a tuple matching ``args``
                axes = dynamic.get(name, {})
                shapes.append({ax: torch.export.Dim.DYNAMIC for ax in axes} or None)
            shapes = tuple(shapes)
            prog = torch.onnx.export(module, tuple(args), input_names=list(input_names),
                                     output_names=list(output_names), dynamo=True,
                                     dynamic_shapes=shapes, opset_version=opset or 18,
                                     verbose=False, optimize=True)
            model = prog.model_proto
        else:
            buf = io.BytesIO()
            dyn_axes = {k: dict(v) for k, v in dynamic.items()}
            torch.onnx.export(module, tuple(args), buf, input_names=list(input_names),
                              output_names=list(output_names), dynamo=False,
                              dynamic_axes=dyn_axes, opset_version=opset or 17)
            model = onnx.load_from_string(buf.getvalue())
    return model


def _torch_case(kind: str, dynamo: bool) -> ModelCase:
    def build():
        import torch

        models, randomize_bn = _torch_models()
        cls, dim_names, shape0, _ = models[kind]
        torch.manual_seed(0)
        module = randomize_bn(cls(), 1).eval()
        x = torch.randn(*shape0)
        outs = ["logits"] if kind not in ("detect", "unet") else (
            ["scores", "boxes", "indices"] if kind == "detect" else ["mask"])
        dyn = {"input": {0: dim_names[0], 2: dim_names[1], 3: dim_names[2]}}
        return _export(module, (x,), ["input"], outs, dyn, dynamo)

    def feeds(variant=0):
        models, _ = _torch_models()
        shape = models[kind][2 + (1 if variant else 0)]
        return {"input": _rng(10 + variant).standard_normal(shape).astype(np.float32)}

    exporter = "dynamo" if dynamo else "torchscript"
    return ModelCase(f"torch_{kind}_{exporter}", f"torch.onnx.export ({exporter})", build, feeds,
                     dynamic=True, slow=dynamo, needs=("torch", "onnxscript") if dynamo else ("torch",))


# --------------------------------------------------------------------------------------------
# (c) transformers models from small configs
# --------------------------------------------------------------------------------------------

VOCAB = 99


def _hf_module(kind: str):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    if kind == "bert":
        cfg = tf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=64, type_vocab_size=2, attn_implementation="eager")
        core = tf.BertModel(cfg)
    elif kind == "gpt2":
        cfg = tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                            bos_token_id=0, eos_token_id=0, use_cache=False, attn_implementation="eager")
        core = tf.GPT2Model(cfg)
    elif kind == "t5":
        cfg = tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                          num_heads=4, use_cache=False, attn_implementation="eager")
        core = tf.T5EncoderModel(cfg)
    elif kind == "vit":
        cfg = tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                           num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, attn_implementation="eager")
        core = tf.ViTModel(cfg, add_pooling_layer=True)
    else:
        raise KeyError(kind)
    core.eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.core = core

        def forward(self, x, mask=None):
            if kind == "vit":
                out = self.core(pixel_values=x, return_dict=False)
            elif kind == "gpt2":
                out = self.core(input_ids=x, attention_mask=mask, use_cache=False,
                                return_dict=False)
            else:
                out = self.core(input_ids=x, attention_mask=mask, return_dict=False)
            return out[0]

    return Wrap().eval()


def _hf_feeds(kind: str, variant: int) -> dict:
    rng = _rng(20 + variant)
    if kind == "vit":
        b = 2 if variant == 0 else 3
        return {"pixel_values": rng.standard_normal((b, 3, 32, 32)).astype(np.float32)}
    b, s = (2, 8) if variant == 0 else (3, 13)
    ids = rng.integers(0, VOCAB, (b, s)).astype(np.int64)
    mask = np.ones((b, s), np.int64)
    mask[0, s - 2:] = 0  # some padding
    return {"input_ids": ids, "attention_mask": mask}


def _hf_case(kind: str, dynamo: bool) -> ModelCase:
    def build():
        import torch

        module = _hf_module(kind)
        f = _hf_feeds(kind, 0)
        args = tuple(torch.from_numpy(v) for v in f.values())
        if kind == "vit":
            dyn = {"pixel_values": {0: "batch"}}
        else:
            dyn = {"input_ids": {0: "batch", 1: "sequence"},
                   "attention_mask": {0: "batch", 1: "sequence"}}
        return _export(module, args, list(f), ["last_hidden_state"], dyn, dynamo)

    exporter = "dynamo" if dynamo else "torchscript"
    return ModelCase(f"hf_{kind}_{exporter}", f"transformers + torch.onnx ({exporter})", build,
                     lambda v=0: _hf_feeds(kind, v), dynamic=True, slow=True,
                     needs=("torch", "transformers") + (("onnxscript",) if dynamo else ()))


# --------------------------------------------------------------------------------------------
# (d) an opset 7-10 era model written with onnx.helper, IR version 3
# --------------------------------------------------------------------------------------------

def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def old_opset_model(opset: int = 9) -> onnx.ModelProto:
    """BatchNormalization(spatial) / Dropout-7 / Upsample / Sum of three, names with '/' and ':'.

    IR version 3: initializers are repeated as graph inputs.  ``opset`` in 7..9 (Upsample with a
    ``scales`` attribute for 7, a scales input for 9); opset 10 uses Resize-10 instead."""
    rng = _rng(3)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    bn = [rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8),
          rng.uniform(0.5, 1.5, 8)]
    bn = [a.astype(np.float32) for a in bn]
    w2 = rng.normal(0, 0.2, (8, 8, 1, 1)).astype(np.float32)
    w3 = rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32)
    fc_w = rng.normal(0, 0.02, (8 * 16 * 16, 5)).astype(np.float32)
    fc_b = rng.normal(0, 0.1, 5).astype(np.float32)
    inits = [_init("conv1/W:0", w1), _init("conv1/B:0", b1), _init("bn1/scale:0", bn[0]),
             _init("bn1/bias:0", bn[1]), _init("bn1/mean:0", bn[2]), _init("bn1/var:0", bn[3]),
             _init("branch_a/W:0", w2), _init("branch_b/W:0", w3),
             _init("fc/W:0", fc_w), _init("fc/B:0", fc_b)]
    nodes = [
        helper.make_node("Conv", ["data:0", "conv1/W:0", "conv1/B:0"], ["conv1/out:0"],
                         "conv1/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
    ]
    bn_attrs = dict(epsilon=1e-3, momentum=0.9)
    if opset < 9:
        bn_attrs["spatial"] = 1
    nodes.append(helper.make_node(
        "BatchNormalization", ["conv1/out:0", "bn1/scale:0", "bn1/bias:0", "bn1/mean:0", "bn1/var:0"],
        ["bn1/out:0"], "bn1/BatchNorm", **bn_attrs))
    nodes.append(helper.make_node("Relu", ["bn1/out:0"], ["relu1:0"], "relu1/Relu"))
    nodes.append(helper.make_node("Dropout", ["relu1:0"], ["drop1:0", "drop1/mask:0"],
                                  "drop1/Dropout", ratio=0.3))
    nodes.append(helper.make_node("Conv", ["drop1:0", "branch_a/W:0"], ["a:0"], "branch_a/Conv",
                                  kernel_shape=[1, 1]))
    nodes.append(helper.make_node("Conv", ["drop1:0", "branch_b/W:0"], ["b:0"], "branch_b/Conv",
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Sum", ["drop1:0", "a:0", "b:0"], ["sum:0"], "merge/Sum"))
    nodes.append(helper.make_node("MaxPool", ["sum:0"], ["pool:0"], "pool/MaxPool",
                                  kernel_shape=[2, 2], strides=[2, 2]))
    if opset >= 10:
        inits.append(_init("up/scales:0", np.array([1, 1, 2, 2], np.float32)))
        nodes.append(helper.make_node("Resize", ["pool:0", "up/scales:0"], ["up:0"], "up/Resize",
                                      mode="nearest"))
    elif opset == 9:
        inits.append(_init("up/scales:0", np.array([1, 1, 2, 2], np.float32)))
        nodes.append(helper.make_node("Upsample", ["pool:0", "up/scales:0"], ["up:0"],
                                      "up/Upsample", mode="nearest"))
    else:
        nodes.append(helper.make_node("Upsample", ["pool:0"], ["up:0"], "up/Upsample",
                                      mode="nearest", scales=[1.0, 1.0, 2.0, 2.0]))
    inits.append(_init("flat/shape:0", np.array([0, -1], np.int64)))
    nodes.append(helper.make_node("Reshape", ["up:0", "flat/shape:0"], ["flat:0"], "flat/Reshape"))
    nodes.append(helper.make_node("Gemm", ["flat:0", "fc/W:0", "fc/B:0"], ["fc:0"], "fc/Gemm",
                                  alpha=1.0, beta=1.0))
    nodes.append(helper.make_node("Softmax", ["fc:0"], ["prob:0"], "prob/Softmax", axis=1))
    inputs = [helper.make_tensor_value_info("data:0", TensorProto.FLOAT, [1, 3, 32, 32])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "old_style", inputs,
                              [helper.make_tensor_value_info("prob:0", TensorProto.FLOAT, [1, 5])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="old-converter")
    model.ir_version = 3
    onnx.checker.check_model(model)
    return model


def _fixed_feeds(shapes: dict, seed=30):
    def feeds(variant=0):
        rng = _rng(seed + variant)
        return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    return feeds


# --------------------------------------------------------------------------------------------
# (e) other exporters' styles
# --------------------------------------------------------------------------------------------

def _const_node(name, arr):
    return helper.make_node("Constant", [], [name], name=f"{name}_const",
                            value=numpy_helper.from_array(np.asarray(arr), name))


def paddle_style_model() -> onnx.ModelProto:
    """paddle2onnx-like: weights as Constant nodes, HardSigmoid/HardSwish, p2o dim names."""
    rng = _rng(4)
    nodes = []
    nodes.append(_const_node("conv2d_0.w_0", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)))
    nodes.append(_const_node("conv2d_0.b_0", rng.normal(0, 0.1, 8).astype(np.float32)))
    nodes.append(helper.make_node("Conv", ["x", "conv2d_0.w_0", "conv2d_0.b_0"], ["conv2d_0.tmp_1"],
                                  "p2o.Conv.0", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  strides=[1, 1], dilations=[1, 1], group=1))
    nodes.append(helper.make_node("HardSwish", ["conv2d_0.tmp_1"], ["hardswish_0.tmp_0"],
                                  "p2o.HardSwish.0"))
    nodes.append(_const_node("dw.w_0", rng.normal(0, 0.3, (8, 1, 3, 3)).astype(np.float32)))
    nodes.append(helper.make_node("Conv", ["hardswish_0.tmp_0", "dw.w_0"], ["dw.tmp_0"],
                                  "p2o.Conv.1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8))
    nodes.append(helper.make_node("GlobalAveragePool", ["dw.tmp_0"], ["pool.tmp_0"],
                                  "p2o.GlobalAveragePool.0"))
    nodes.append(helper.make_node("HardSigmoid", ["pool.tmp_0"], ["hsig.tmp_0"],
                                  "p2o.HardSigmoid.0", alpha=1.0 / 6, beta=0.5))
    nodes.append(helper.make_node("Mul", ["dw.tmp_0", "hsig.tmp_0"], ["se.tmp_0"], "p2o.Mul.0"))
    nodes.append(_const_node("bn.scale", rng.uniform(0.5, 1.5, 8).astype(np.float32)))
    nodes.append(_const_node("bn.bias", rng.normal(0, 0.1, 8).astype(np.float32)))
    nodes.append(_const_node("bn.mean", rng.normal(0, 0.1, 8).astype(np.float32)))
    nodes.append(_const_node("bn.var", rng.uniform(0.5, 1.5, 8).astype(np.float32)))
    nodes.append(helper.make_node("BatchNormalization",
                                  ["se.tmp_0", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
                                  ["bn.tmp_0"], "p2o.BatchNormalization.0", epsilon=1e-5))
    nodes.append(helper.make_node("HardSigmoid", ["bn.tmp_0"], ["out"], "p2o.HardSigmoid.1",
                                  alpha=0.2, beta=0.5))
    graph = helper.make_graph(
        nodes, "paddle_style",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1",
                                        "p2o.DynamicDimension.2"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT,
                                       ["p2o.DynamicDimension.0", 8, "p2o.DynamicDimension.1",
                                        "p2o.DynamicDimension.2"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="PaddlePaddle")
    onnx.checker.check_model(model)
    return model


def paddle_bn_stats_model(rank_known: bool = True) -> onnx.ModelProto:
    """paddle2onnx-like recognizer piece: BatchNorm statistics and scalar helper constants
    (``p2o_helper_constant_*``) as initializers; ``rank_known=False`` declares the input without a
    shape (as some Paddle exports do), so BatchNorm cannot become ``nn.BatchNorm2d``."""
    rng = _rng(7)
    inits = [
        _init("conv2d_0.w_0", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
        _init("batch_norm_0.w_0", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        _init("batch_norm_0.b_0", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("batch_norm_0.w_1", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("batch_norm_0.w_2", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        _init("p2o_helper_constant_0", np.array([0.5], np.float32)),
        _init("p2o_helper_constant_1", np.array(6.0, np.float32)),
        _init("p2o_helper_constant_2", np.array(0.0, np.float32)),
        _init("fc_0.w_0", rng.normal(0, 0.3, (8, 4)).astype(np.float32)),
        _init("fc_0.b_0", rng.normal(0, 0.1, 4).astype(np.float32)),
    ]
    n = [
        helper.make_node("Conv", ["x", "conv2d_0.w_0"], ["conv2d_0.tmp_0"], "p2o.Conv.0",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv2d_0.tmp_0", "batch_norm_0.w_0",
                                                "batch_norm_0.b_0", "batch_norm_0.w_1",
                                                "batch_norm_0.w_2"],
                         ["batch_norm_0.tmp_2"], "p2o.BatchNormalization.0", epsilon=1e-5),
        helper.make_node("Clip", ["batch_norm_0.tmp_2", "p2o_helper_constant_2",
                                  "p2o_helper_constant_1"], ["relu6_0.tmp_0"], "p2o.Clip.0"),
        helper.make_node("Mul", ["relu6_0.tmp_0", "p2o_helper_constant_0"], ["scale_0.tmp_0"],
                         "p2o.Mul.0"),
        helper.make_node("GlobalAveragePool", ["scale_0.tmp_0"], ["pool2d_0.tmp_0"],
                         "p2o.GlobalAveragePool.0"),
        helper.make_node("Flatten", ["pool2d_0.tmp_0"], ["flatten_0.tmp_0"], "p2o.Flatten.0",
                         axis=1),
        helper.make_node("MatMul", ["flatten_0.tmp_0", "fc_0.w_0"], ["fc_0.tmp_0"],
                         "p2o.MatMul.0"),
        helper.make_node("Add", ["fc_0.tmp_0", "fc_0.b_0"], ["out"], "p2o.Add.0"),
    ]
    shape = ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1", "p2o.DynamicDimension.2"]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape if rank_known else None)
    graph = helper.make_graph(
        n, "paddle_bn_stats", [x],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["p2o.DynamicDimension.0", 4])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="PaddlePaddle")
    if rank_known:  # the checker wants a shape on every declared input
        onnx.checker.check_model(model)
    return model


def tf_style_model() -> onnx.ModelProto:
    """tf2onnx-like: NHWC input, Transpose pairs around every Conv, ':0' names."""
    rng = _rng(5)
    inits = [
        _init("conv1/kernel:0", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
        _init("conv1/bias:0", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("conv2/kernel:0", rng.normal(0, 0.2, (16, 8, 3, 3)).astype(np.float32)),
        _init("conv2/bias:0", rng.normal(0, 0.1, 16).astype(np.float32)),
        _init("dense/kernel:0", rng.normal(0, 0.2, (16, 4)).astype(np.float32)),
        _init("dense/bias:0", rng.normal(0, 0.1, 4).astype(np.float32)),
        _init("mean/axes:0", np.array([1, 2], np.int64)),
    ]
    n = []
    n.append(helper.make_node("Transpose", ["input_1:0"], ["conv1/in_nchw"], "conv1__6", perm=[0, 3, 1, 2]))
    n.append(helper.make_node("Conv", ["conv1/in_nchw", "conv1/kernel:0", "conv1/bias:0"],
                              ["conv1/out_nchw"], "model/conv1/Conv2D", kernel_shape=[3, 3],
                              strides=[2, 2], auto_pad="SAME_UPPER", dilations=[1, 1]))
    n.append(helper.make_node("Transpose", ["conv1/out_nchw"], ["conv1/Relu_in:0"], "conv1__8", perm=[0, 2, 3, 1]))
    n.append(helper.make_node("Relu", ["conv1/Relu_in:0"], ["conv1/Relu:0"], "model/conv1/Relu"))
    n.append(helper.make_node("Transpose", ["conv1/Relu:0"], ["conv2/in_nchw"], "conv2__10", perm=[0, 3, 1, 2]))
    n.append(helper.make_node("Conv", ["conv2/in_nchw", "conv2/kernel:0", "conv2/bias:0"],
                              ["conv2/out_nchw"], "model/conv2/Conv2D", kernel_shape=[3, 3],
                              strides=[1, 1], auto_pad="SAME_UPPER"))
    n.append(helper.make_node("Transpose", ["conv2/out_nchw"], ["conv2/BiasAdd:0"], "conv2__12", perm=[0, 2, 3, 1]))
    n.append(helper.make_node("Relu", ["conv2/BiasAdd:0"], ["conv2/Relu:0"], "model/conv2/Relu"))
    n.append(helper.make_node("ReduceMean", ["conv2/Relu:0", "mean/axes:0"], ["gap:0"],
                              "model/global_average_pooling2d/Mean", keepdims=0))
    n.append(helper.make_node("MatMul", ["gap:0", "dense/kernel:0"], ["dense/MatMul:0"], "model/dense/MatMul"))
    n.append(helper.make_node("Add", ["dense/MatMul:0", "dense/bias:0"], ["dense/BiasAdd:0"], "model/dense/BiasAdd"))
    n.append(helper.make_node("Softmax", ["dense/BiasAdd:0"], ["dense:0"], "model/dense/Softmax", axis=-1))
    graph = helper.make_graph(
        n, "tf2onnx",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["unk__20", "unk__21", "unk__22", 3])],
        [helper.make_tensor_value_info("dense:0", TensorProto.FLOAT, ["unk__23", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              producer_name="tf2onnx")
    # the kernels in tf2onnx files are stored NCHW already; the convs above take OIHW weights
    onnx.checker.check_model(model)
    return model


def const_weights_model() -> onnx.ModelProto:
    """Weights reached through Identity / Cast / Reshape / DequantizeLinear of constants."""
    rng = _rng(6)
    w_fp16 = rng.normal(0, 0.3, (8, 3 * 3 * 3)).astype(np.float16)
    q = rng.integers(-100, 100, (16, 8)).astype(np.int8)
    inits = [
        _init("w_raw", w_fp16),
        _init("w_shape", np.array([8, 3, 3, 3], np.int64)),
        _init("b_raw", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("fc_q", q),
        _init("fc_scale", np.array(0.01, np.float32)),
        _init("fc_zp", np.array(0, np.int8)),
    ]
    n = [
        helper.make_node("Cast", ["w_raw"], ["w_f32"], "cast_w", to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["w_f32", "w_shape"], ["w"], "reshape_w"),
        helper.make_node("Identity", ["b_raw"], ["b"], "identity_b"),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], "relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], "gap"),
        helper.make_node("Flatten", ["g"], ["f"], "flatten", axis=1),
        helper.make_node("DequantizeLinear", ["fc_q", "fc_scale", "fc_zp"], ["fc_w"], "dq_fc"),
        helper.make_node("Gemm", ["f", "fc_w"], ["y"], "fc", transB=1),
    ]
    graph = helper.make_graph(
        n, "const_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------------
# the list
# --------------------------------------------------------------------------------------------

_LIGHT_SLOW = {"vgg19", "zfnet512", "bvlc_alexnet", "densenet121", "inception_v2", "resnet50"}


@functools.lru_cache(maxsize=None)
def all_cases() -> tuple:
    cases = []
    for name in LIGHT_NAMES:
        cases.append(ModelCase(f"light_{name}", "ONNX model zoo (light, random weights)",
                               functools.partial(light_model, name), _light_feeds(name),
                               slow=name in _LIGHT_SLOW))
    for kind in ("resnet", "mobilenet", "unet", "detect"):
        for dynamo in (False, True):
            cases.append(_torch_case(kind, dynamo))
    for kind in ("bert", "gpt2", "t5", "vit"):
        for dynamo in (False, True):
            cases.append(_hf_case(kind, dynamo))
    for opset in (7, 9, 10):
        cases.append(ModelCase(f"old_opset{opset}", "onnx.helper (opset %d, IR 3)" % opset,
                               functools.partial(old_opset_model, opset),
                               _fixed_feeds({"data:0": (1, 3, 32, 32)})))
    cases.append(ModelCase("paddle_style", "paddle2onnx-style (Constant weights)",
                           paddle_style_model,
                           lambda v=0: _fixed_feeds({"x": (2, 3, 16, 16) if v == 0 else (1, 3, 24, 20)},
                                                    40)(v), dynamic=True))
    cases.append(ModelCase("tf_style", "tf2onnx-style (NHWC, Transpose pairs)", tf_style_model,
                           lambda v=0: _fixed_feeds({"input_1:0": (2, 16, 16, 3) if v == 0 else (1, 20, 12, 3)},
                                                    50)(v), dynamic=True))
    cases.append(ModelCase("const_weights", "weights via Identity/Cast/Reshape/DequantizeLinear",
                           const_weights_model,
                           lambda v=0: _fixed_feeds({"x": (2, 3, 16, 16) if v == 0 else (3, 3, 9, 13)},
                                                    60)(v), dynamic=True))
    return tuple(cases)


def get_case(name: str) -> ModelCase:
    for c in all_cases():
        if c.name == name:
            return c
    raise KeyError(name)


def count_params(model: onnx.ModelProto) -> int:
    total = 0
    for t in model.graph.initializer:
        total += int(np.prod(t.dims)) if len(t.dims) else 1
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    total += int(np.prod(a.t.dims)) if len(a.t.dims) else 1
    return total


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
