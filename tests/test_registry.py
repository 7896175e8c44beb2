"""The registry: latest-at-or-below lookup, and no spec version accepted without review."""
import onnx.defs
import pytest

from nnport.ncnn_emit.ops import REGISTRY as NCNN_REGISTRY
from nnport.registry import Registry
from nnport.torch_emit import REGISTRY


# onnxruntime defines these in the default domain although ONNX does not (its transformers
# optimizer writes them); they are reviewed against onnxruntime's schema, version 1
ORT_DEFAULT_DOMAIN = {"SimplifiedLayerNormalization"}


def _spec_versions():
    out = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain in ("", "ai.onnx"):
            out.setdefault(s.name, set()).add(s.since_version)
    return out


def test_lookup_picks_latest_since_at_or_below():
    reg = Registry("t")
    reg.register("Op", (1, 9))(lambda ctx, x: "v1")
    reg.register("Op", (13,))(lambda ctx, x: "v13")
    assert reg.lookup("", "Op", 0) is None
    assert reg.lookup("", "Op", 1).since == 1
    assert reg.lookup("", "Op", 12).since == 1
    assert reg.lookup("ai.onnx", "Op", 13).since == 13
    assert reg.lookup("", "Op", 21).since == 13
    assert reg.lookup("com.example", "Op", 21) is None


@pytest.mark.parametrize("registry", [REGISTRY, NCNN_REGISTRY], ids=lambda r: r.target)
def test_every_spec_version_of_a_registered_op_was_reviewed(registry):
    """Fails when the installed onnx defines a version of a registered op that no emitter
    lists: new semantics are never accepted silently."""
    spec = _spec_versions()
    unreviewed = []
    for (domain, op), emitters in registry.ops().items():
        if domain != "" or op in ORT_DEFAULT_DOMAIN:
            continue
        assert op in spec, f"{op} is registered but the spec has no such op"
        reviewed = registry.reviewed_versions(domain, op)
        first = min(reviewed)
        for v in sorted(spec[op]):
            if v >= first and v not in reviewed:
                unreviewed.append(f"{op}-{v}")
        for v in reviewed:
            assert v in spec[op], f"{op} lists version {v}, which the spec does not define"
    assert not unreviewed, "spec versions not reviewed: " + ", ".join(unreviewed)


def test_ncnn_private_ops_have_their_own_domain():
    """The legalize passes' nodes (domain "nnport") are found through the same registry, and
    not as ONNX ops."""
    assert NCNN_REGISTRY.lookup("nnport", "AdaptivePool", 1) is not None
    assert NCNN_REGISTRY.lookup("", "AdaptivePool", 21) is None
    assert not any(":" in op for _, op in NCNN_REGISTRY.ops())
