"""Round trip: a PyTorch module -> ONNX (dynamo and TorchScript exporters) -> the model.py and
model.safetensors nnport writes -> ONNX again with ``nnport export`` (dynamo) -> onnxruntime,
compared with the *original* module at two batch sizes.  The generated module's state dict has
the original keys (and values) for every tensor the first ONNX file kept, and its parameters
that are not original keys are the ones the exporter folded (named ``..._folded``)."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import nnport  # noqa: E402

from tree_models import export_onnx, kept_tensors  # noqa: E402

CASES = [(m, e) for m in ("resnet", "vit", "yolo", "lstm", "bert") for e in ("dynamo", "ts")]


def _load_generated(py):
    """model.py as a user imports it, and its load() (the weights beside it)."""
    name = f"_round_trip_{abs(hash(str(py)))}"
    spec = importlib.util.spec_from_file_location(name, py)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod.load()


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", CASES)
def test_round_trip(tmp_path, name, exporter):
    model, example, proto = export_onnx(name, exporter)
    src = tmp_path / "original.onnx"
    onnx.save(proto, src)
    py = tmp_path / "gen" / "model.py"
    nnport.convert(str(src), str(py))  # verified against onnxruntime on the way
    gen = _load_generated(py)

    # the original's keys and values for every tensor the ONNX file kept
    kept = kept_tensors(model, proto)
    assert kept
    sd = gen.state_dict()
    missing = sorted(k for k in kept if k not in sd)
    assert not missing, f"original keys not in the generated state dict: {missing[:5]}"
    for k, v in kept.items():
        assert torch.equal(sd[k], v), k
    original = set(model.state_dict())
    foreign = sorted(k for k, _ in gen.named_parameters()
                     if k not in original and "_folded" not in k)
    assert not foreign, f"parameters under keys the original does not have: {foreign[:5]}"

    # the generated module exported again (dynamo, dynamic batch), run in onnxruntime
    arg = proto.graph.input[0].name
    out = tmp_path / "round_trip.onnx"
    nnport.export(f"{py}:load", str(out), exporter="dynamo",
                  inputs={arg: np.concatenate([example[0].numpy()] * 2)},  # batch 2: no 0/1
                  dynamic={arg: {0: "batch"}})                            # specialization
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert len(sess.get_inputs()) == 1
    for batch in (1, 3):
        shape = (batch,) + tuple(example[0].shape[1:])
        g = torch.Generator().manual_seed(batch)
        x = torch.randint(0, 50, shape, generator=g) if not example[0].is_floating_point() \
            else torch.randn(shape, generator=g)  # token ids (LSTM tagger, BERT) or images
        with torch.no_grad():
            ref = _first(model(x)).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name}/{exporter} at batch {batch}")
