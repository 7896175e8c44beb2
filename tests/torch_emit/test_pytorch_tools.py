"""PyTorch's own tools accept the generated module: ``torch.export.export`` with a ``Dim`` for
every dynamic input dim (and the exported program serves another shape), ``torch.jit.trace``,
``torch.jit.script`` and ``torch.compile(fullgraph=True)``.  Shape arithmetic must stay Python
ints: a shape sent through a tensor and ``.tolist()`` is a data-dependent guard for export and a
graph break for compile."""
from __future__ import annotations

import warnings

import pytest
import torch

from nnport.convert import generate_torch
from nnport.torch_emit import build_module

from models.builders import get_case

FAST = ["torch_resnet_torchscript", "torch_mobilenet_torchscript", "torch_unet_torchscript",
        "torch_detect_torchscript", "hf_bert_torchscript", "hf_t5_torchscript"]
# (export/trace/script also pass on the dynamo exporter's resnet, unet, mobilenet, gpt2, t5 and
# vit files, run by hand; the suite keeps the two with the most shape arithmetic)
SLOW = ["hf_gpt2_torchscript", "torch_detect_dynamo", "hf_bert_dynamo"]
CASES = FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW]

_MODULES: dict = {}


def _setup(name):
    case = get_case(name)
    for mod in case.needs:
        pytest.importorskip(mod)
    if name not in _MODULES:
        model = case.model()
        source, state = generate_torch(model)
        dyn = []
        for vi in model.graph.input:
            dims = vi.type.tensor_type.shape.dim
            dyn.append({i: torch.export.Dim.DYNAMIC for i, d in enumerate(dims)
                        if d.dim_param or not d.HasField("dim_value")} or None)
        _MODULES[name] = (build_module(source, state, name=name), tuple(dyn), source)
    module, dyn, source = _MODULES[name]
    args = [tuple(torch.from_numpy(v) for v in case.feeds(i).values()) for i in (0, 1)]
    return module, dyn, args, source


def _close(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def _eager(module, args):
    with torch.no_grad():
        return module(*args)


@pytest.mark.parametrize("name", CASES)
def test_no_shape_round_trip_through_tensors(name):
    source = _setup(name)[3]
    fwd = source[source.index("    def forward"):]
    assert ".tolist()" not in fwd and ".item()" not in fwd, fwd


@pytest.mark.parametrize("name", CASES)
def test_torch_export_with_dynamic_dims(name):
    module, dyn, args, _ = _setup(name)
    assert any(d for d in dyn), "the case should have dynamic dims"
    # export specializes dims whose example size is 0 or 1: export at a shape without them
    example = next(a for a in args if all(t.shape[i] > 1 for t, d in zip(a, dyn) for i in d or ()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(module, example, dynamic_shapes=dyn, strict=False)
    # the dims stayed dynamic: the same program runs the second shape and agrees with eager
    for a in args:
        _close(ep.module()(*a), _eager(module, a))


@pytest.mark.parametrize("name", CASES)
def test_torch_jit_trace(name):
    module, _, args, _ = _setup(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, args[0], check_trace=False)
    _close(traced(*args[0]), _eager(module, args[0]))


@pytest.mark.parametrize("name", CASES)
def test_torch_jit_script(name):
    module, _, args, _ = _setup(name)
    scripted = torch.jit.script(module)
    for a in args:
        _close(scripted(*a), _eager(module, a))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torch_detect_torchscript"])
def test_torch_compile_fullgraph(name):
    module, _, args, _ = _setup(name)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, dynamic=True)
    for a in args:
        _close(compiled(*a), _eager(module, a))


def _data_dependent_model():
    import numpy as np
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    N = helper.make_node
    nodes = [N("Greater", ["x", "zero"], ["m"]), N("NonZero", ["m"], ["nz"]),
             N("Transpose", ["nz"], ["idx"], perm=[1, 0]), N("GatherND", ["x", "idx"], ["vals"]),
             N("TopK", ["x2", "k"], ["tv", "ti"], axis=-1)]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", T.FLOAT, ["n", 4]),
         helper.make_tensor_value_info("x2", T.FLOAT, [2, "m"]),
         helper.make_tensor_value_info("k", T.INT64, [1])],
        [helper.make_tensor_value_info("vals", T.FLOAT, None),
         helper.make_tensor_value_info("tv", T.FLOAT, None),
         helper.make_tensor_value_info("ti", T.INT64, None)],
        [numpy_helper.from_array(np.array(0, np.float32), "zero")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_data_dependent_sizes_export_with_checks():
    """NonZero and a TopK whose k is an input: unbacked sizes, with torch._check hints on k."""
    import numpy as np

    from util import ort_run

    model = _data_dependent_model()
    source, state = generate_torch(model)
    assert "torch._check(" in source
    module = build_module(source, state)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((5, 4)).astype(np.float32),
              "x2": rng.standard_normal((2, 9)).astype(np.float32), "k": np.array([3])},
             {"x": rng.standard_normal((7, 4)).astype(np.float32),
              "x2": rng.standard_normal((2, 6)).astype(np.float32), "k": np.array([5])}]
    args = [tuple(torch.from_numpy(v) for v in f.values()) for f in feeds]
    D = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(module, args[0], dynamic_shapes=({0: D}, {1: D}, None),
                                 strict=False)
    scripted = torch.jit.script(module)
    for f, a in zip(feeds, args):
        ref = ort_run(model, f)
        for got in (ep.module()(*a), scripted(*a), _eager(module, a)):
            for r, g in zip(ref, got):
                np.testing.assert_allclose(g.numpy(), r, rtol=1e-6)
