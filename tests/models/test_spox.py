"""Models written with spox (a Python ONNX builder): Constant-node weights, symbolic dims, If."""
import numpy as np
import pytest

import nnport

spox = pytest.importorskip("spox")


def _model():
    import spox.opset.ai.onnx.v17 as op
    from spox import Tensor, argument, build

    rng = np.random.default_rng(0)
    x = argument(Tensor(np.float32, ("batch", 6)))
    flag = argument(Tensor(np.bool_, ()))
    w1 = op.constant(value=rng.standard_normal((6, 8)).astype(np.float32))
    b1 = op.constant(value=rng.standard_normal(8).astype(np.float32))
    h = op.relu(op.add(op.matmul(x, w1), b1))
    w2 = op.constant(value=rng.standard_normal((8, 4)).astype(np.float32))
    logits = op.matmul(h, w2)
    (out,) = op.if_(flag, then_branch=lambda: [op.softmax(logits, axis=-1)],
                    else_branch=lambda: [op.neg(logits)])
    return build({"x": x, "flag": flag}, {"y": out})


@pytest.mark.parametrize("flag", [True, False])
def test_spox_model_converts_and_matches(flag):
    model = _model()
    module = nnport.to_torch(model)
    for batch in (1, 5):
        rep = nnport.verify(model, module, inputs={"flag": np.array(flag)},
                            input_shapes={"x": (batch, 6)})
        assert rep.ok, rep.lines()
