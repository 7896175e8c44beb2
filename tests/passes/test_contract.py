"""One pass contract (``passes/base.py``): every pass of every named pipeline takes an
``onnx_ir.Model``, changes it in place and returns ``PassResult(model, modified)``."""
from __future__ import annotations

import pytest
from onnx_ir.passes import PassResult

from nnport.io import load_model
from nnport.ncnn_emit.legalize.adaptive_pool import fuse_adaptive_pools
from nnport.passes.base import run_passes
from nnport.passes.normalize.noop import eliminate_noops
from nnport.passes.normalize.pipeline import pipeline
from nnport.passes.tf_layout import FIRST, ROUND
from nnport.passes.torch import FUSIONS
from nnport.tools.simplify import DEFAULT_PASSES
from tools.cnn import cnn_model

PIPELINES = {
    "normalize": pipeline(),
    "normalize-no-fold": pipeline(fold=False, infer=False),
    "torch": list(FUSIONS),
    "tf_layout": [*FIRST, *ROUND],
    "simplify": [p for _, p in DEFAULT_PASSES],
    "ncnn": [fuse_adaptive_pools],  # before the ncnn emitter (build_graph)
}
CASES = [(name, p) for name, ps in PIPELINES.items() for p in ps]


@pytest.mark.parametrize("pass_", [p for _, p in CASES],
                         ids=[f"{n}:{getattr(p, '__name__', type(p).__name__)}" for n, p in CASES])
def test_every_pass_returns_a_pass_result_on_its_own_model(pass_):
    model = load_model(cnn_model())
    res = pass_(model)
    assert isinstance(res, PassResult)
    assert res.model is model and isinstance(res.modified, bool)


def test_modified_says_whether_the_pass_changed_the_model():
    model = load_model(cnn_model())  # Identity, Dropout, a same-type Cast ...
    assert eliminate_noops(model).modified
    assert not eliminate_noops(model).modified


def test_run_passes_repeats_rounds_until_nothing_changes():
    calls = []

    def twice(model):  # changes the model the first two times it runs
        calls.append("twice")
        return PassResult(model, calls.count("twice") <= 2)

    def never(model):
        calls.append("never")
        return PassResult(model, False)

    model = load_model(cnn_model())
    res = run_passes(model, [twice, never], rounds=5)
    assert res.model is model and res.modified
    # every pass of a round runs; the third round changes nothing and is the last
    assert calls == ["twice", "never"] * 3
    calls.clear()
    assert not run_passes(model, [never], rounds=5).modified and calls == ["never"]
