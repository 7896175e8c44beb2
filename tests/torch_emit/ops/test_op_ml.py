"""ai.onnx.ml: scikit-learn models converted by skl2onnx, and hand-built nodes, against
onnxruntime.  Labels exact, probabilities and values at the default float32 tolerance."""
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nnport
from nnport.errors import ConversionError
from nnport.verify.compare import compare_arrays
from tests.util import ort_run, torch_run

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,  # noqa: E402
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR  # noqa: E402

ML_OPSET = {"": 17, "ai.onnx.ml": 3}


def _data(n_classes=3, n=300):
    X, y = make_classification(n, 8, n_informative=5, n_classes=n_classes, random_state=0)
    return X.astype(np.float32), y


def _to_onnx(model, X, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skl2onnx.to_onnx(model, X[:1], target_opset=ML_OPSET, options=options or None)


def _check(proto, feeds, *, label_exact=True):
    ref = ort_run(proto, feeds)
    got = torch_run(proto, feeds)
    assert len(ref) == len(got)
    for i, (r, g) in enumerate(zip(ref, got)):
        if label_exact and isinstance(r, np.ndarray) and r.dtype.kind in "iu":
            np.testing.assert_array_equal(g, r)
        rep = compare_arrays(f"output {i}", r, g)
        assert rep.ok, rep
    return ref, got


def _generated(proto) -> str:
    from nnport.convert import prepare
    from nnport.torch_emit import generate

    return generate(prepare(proto))[0]


def _test_rows(X, n=200, seed=1):
    rng = np.random.default_rng(seed)
    return (X[:n] + 0.3 * rng.standard_normal(X[:n].shape)).astype(np.float32)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_regression_with_zipmap(n_classes):
    X, y = _data(n_classes)
    proto = _to_onnx(LogisticRegression(max_iter=500).fit(X, y), X)
    assert any(n.op_type == "ZipMap" for n in proto.graph.node)
    ref, got = _check(proto, {"X": _test_rows(X)})
    assert isinstance(got[1], list) and isinstance(got[1][0], dict)  # ZipMap: dicts per row


def test_linear_regression():
    X, y = make_regression(200, 8, random_state=0)
    X = X.astype(np.float32)
    _check(_to_onnx(LinearRegression().fit(X, y), X), {"X": _test_rows(X)})


@pytest.mark.parametrize("n_classes", [2, 3])
def test_random_forest_classifier(n_classes):
    X, y = _data(n_classes)
    proto = _to_onnx(RandomForestClassifier(20, max_depth=10, random_state=0).fit(X, y), X,
                     zipmap=False)
    assert "_tree_traverse(" in _generated(proto)  # deep trees: one gather per level
    _check(proto, {"X": _test_rows(X)})


def test_random_forest_with_missing_values():
    X, y = _data(3)
    X[::7, 2] = np.nan  # scikit-learn's forests learn where missing values go
    proto = _to_onnx(RandomForestClassifier(10, random_state=0).fit(X, y), X, zipmap=False)
    xt = _test_rows(X)
    xt[::5, 2] = np.nan
    _check(proto, {"X": xt})


def test_random_forest_regressor():
    X, y = make_regression(200, 8, random_state=0)
    X = X.astype(np.float32)
    _check(_to_onnx(RandomForestRegressor(15, random_state=0).fit(X, y), X),
           {"X": _test_rows(X)})


@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_boosting_classifier_100_trees(n_classes):
    X, y = _data(n_classes)
    gb = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
    proto = _to_onnx(gb, X, zipmap=False)
    assert "_tree_gemm(" in _generated(proto)  # shallow trees: matrix products
    _check(proto, {"X": _test_rows(X)})


def test_gradient_boosting_regressor():
    X, y = make_regression(200, 8, random_state=0)
    X = X.astype(np.float32)
    gb = GradientBoostingRegressor(n_estimators=120, random_state=0).fit(X, y)
    _check(_to_onnx(gb, X), {"X": _test_rows(X)})


@pytest.mark.parametrize("kernel,n_classes", [("rbf", 3), ("rbf", 2), ("poly", 3),
                                              ("linear", 2), ("sigmoid", 3)])
def test_svc(kernel, n_classes):
    X, y = _data(n_classes)
    proto = _to_onnx(SVC(kernel=kernel).fit(X, y), X, zipmap=False)
    _check(proto, {"X": _test_rows(X)})


@pytest.mark.parametrize("n_classes", [2, 4])
def test_svc_with_probabilities(n_classes):
    X, y = _data(n_classes, n=200)
    proto = _to_onnx(SVC(probability=True, random_state=0).fit(X, y), X, zipmap=False)
    _check(proto, {"X": _test_rows(X)})


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_svr(kernel):
    X, y = make_regression(200, 8, random_state=0)
    X = X.astype(np.float32)
    _check(_to_onnx(SVR(kernel=kernel).fit(X, y), X), {"X": _test_rows(X)})


def test_preprocessing_pipeline_scaler_one_hot():
    rng = np.random.default_rng(0)
    num = rng.standard_normal((300, 4)).astype(np.float32)
    cat = rng.integers(0, 4, (300, 2)).astype(np.int64)
    y = (num[:, 0] + cat[:, 0] > 1).astype(np.int64)
    pre = ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]),
                             ("cat", OneHotEncoder(), [4, 5])])
    X = np.concatenate([num, cat.astype(np.float32)], axis=1)
    pipe = make_pipeline(pre, LogisticRegression()).fit(X, y)
    proto = _to_onnx(pipe, X)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Scaler", "OneHotEncoder", "LinearClassifier"} <= ops, ops
    _check(proto, {"X": X[:100]})


# ---- hand-built nodes -------------------------------------------------------------------------
def _ml_node(op, inputs, outputs, attrs, inits=()):
    node = helper.make_node(op, [n for n, *_ in inputs] + [t.name for t in inits],
                            [n for n, *_ in outputs], domain="ai.onnx.ml", **attrs)
    g = helper.make_graph([node], "ml", [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                               helper.make_opsetid("ai.onnx.ml", 3)])


F32, I64 = TensorProto.FLOAT, TensorProto.INT64
_X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer(norm):
    x = np.abs(_X) + 0.1
    _check(_ml_node("Normalizer", [("X", F32, [None, 4])], [("Y", F32, [None, 4])],
                    {"norm": norm}), {"X": x})


def test_scaler_binarizer_imputer():
    _check(_ml_node("Scaler", [("X", F32, [None, 4])], [("Y", F32, [None, 4])],
                    {"offset": [0.5, -1.0, 0.0, 2.0], "scale": [2.0, 0.5, 1.0, 3.0]}),
           {"X": _X})
    _check(_ml_node("Binarizer", [("X", F32, [None, 4])], [("Y", F32, [None, 4])],
                    {"threshold": 0.2}), {"X": _X})
    x = _X.copy()
    x[1, 2] = x[3, 0] = np.nan
    _check(_ml_node("Imputer", [("X", F32, [None, 4])], [("Y", F32, [None, 4])],
                    {"imputed_value_floats": [1.0, 2.0, 3.0, 4.0],
                     "replaced_value_float": float("nan")}), {"X": x})


def test_label_encoder_int_to_float_and_one_hot():
    x = np.array([[1, 5, 7], [2, 9, 1]], np.int64)
    _check(_ml_node("LabelEncoder", [("X", I64, [2, 3])], [("Y", F32, [2, 3])],
                    {"keys_int64s": [1, 2, 7], "values_floats": [0.5, 1.5, 2.5],
                     "default_float": -3.0}), {"X": x})
    _check(_ml_node("OneHotEncoder", [("X", I64, [2, 3])], [("Y", F32, [2, 3, 4])],
                    {"cats_int64s": [1, 2, 7, 9]}), {"X": x})


def test_array_feature_extractor_and_feature_vectorizer():
    idx = onnx.numpy_helper.from_array(np.array([3, 0], np.int64), "idx")
    _check(_ml_node("ArrayFeatureExtractor", [("X", F32, [None, 4])], [("Y", F32, None)], {},
                    [idx]), {"X": _X})
    m = _ml_node("FeatureVectorizer", [("A", F32, [None, 4]), ("B", F32, [None, 2])],
                 [("Y", F32, [None, 5])], {"inputdimensions": [4, 1]})
    _check(m, {"A": _X, "B": np.arange(12, dtype=np.float32).reshape(6, 2)})


@pytest.mark.parametrize("agg", ["SUM", "AVERAGE", "MIN", "MAX"])
def test_tree_regressor_aggregates(agg):
    # two stumps on features 0 and 1; the second tree has a leaf without a weight for target 1
    attrs = dict(
        nodes_treeids=[0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 0, 1, 2],
        nodes_featureids=[0, 0, 0, 1, 0, 0], nodes_values=[0.0, 0, 0, 0.5, 0, 0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_GT", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0, 1, 0, 0], nodes_falsenodeids=[2, 0, 0, 2, 0, 0],
        target_treeids=[0, 0, 0, 0, 1, 1, 1], target_nodeids=[1, 1, 2, 2, 1, 2, 2],
        target_ids=[0, 1, 0, 1, 0, 0, 1], target_weights=[1.0, -2.0, 3.0, 0.5, 7.0, -1.0, 4.0],
        n_targets=2, aggregate_function=agg, base_values=[0.25, -0.5])
    _check(_ml_node("TreeEnsembleRegressor", [("X", F32, [None, 4])], [("Y", F32, [None, 2])],
                    attrs), {"X": _X})


def test_string_ops_are_refused_with_the_node_named():
    m = _ml_node("CategoryMapper", [("X", TensorProto.STRING, [None])], [("Y", I64, [None])],
                 {"cats_strings": ["a", "b"], "cats_int64s": [1, 2]})
    m.graph.node[0].name = "cat_map"
    with pytest.raises(ConversionError, match="cat_map.*string"):
        nnport.to_torch(m)


def test_zipmap_model_keeps_shape_inference():
    """onnx types ZipMap's output seq(map(...)), which onnx_ir cannot read back: shape inference
    must still run on the rest of the graph (it failed as a whole before)."""
    from nnport.io import load_model
    from nnport.passes.normalize.pipeline import normalize
    from nnport.passes.normalize.shapes import SHAPE_FAILURE_KEY

    X, y = _data(3, n=60)
    proto = _to_onnx(LogisticRegression(max_iter=200).fit(X, y), X)
    model = normalize(load_model(proto))
    assert SHAPE_FAILURE_KEY not in model.meta, model.meta.get(SHAPE_FAILURE_KEY)
    clf = next(n for n in model.graph if n.op_type == "LinearClassifier")
    assert clf.outputs[1].shape is not None
    assert next(n for n in model.graph if n.op_type == "ZipMap").domain == "ai.onnx.ml"


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("shape,dtype", [((12,), TensorProto.INT32), ((3, 10), TensorProto.INT64)])
def test_tfidf_vectorizer_modes_against_ort(mode, shape, dtype):
    # unigrams, bigrams and trigrams, skips up to 2, columns out of order, a column unused
    pool = [2, 3, 5, 4,  2, 3,  3, 5,  5, 4,  2, 3, 5]
    node = helper.make_node(
        "TfIdfVectorizer", ["x"], ["y"], mode=mode, min_gram_length=1, max_gram_length=3,
        max_skip_count=2, ngram_counts=[0, 4, 10], ngram_indexes=[7, 0, 3, 1, 2, 5, 6, 4],
        pool_int64s=pool, weights=[0.5, 1.5, 2.0, 0.25, 3.0, 1.0, 0.75, 4.0])
    out_shape = [9] if len(shape) == 1 else [shape[0], 9]
    graph = helper.make_graph([node], "tfidf", [helper.make_tensor_value_info("x", dtype, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).integers(1, 7, shape).astype(
        np.int32 if dtype == TensorProto.INT32 else np.int64)
    ref, got = ort_run(model, {"x": x})[0], torch_run(model, {"x": x})[0]
    assert ref.any()
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_tfidf_vectorizer_strings_refused():
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=1,
                            max_gram_length=1, max_skip_count=0, ngram_counts=[0],
                            ngram_indexes=[0], pool_strings=["a"])
    graph = helper.make_graph([node], "tfidf", [helper.make_tensor_value_info("x", TensorProto.STRING, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ConversionError, match="TfIdfVectorizer.*string"):
        nnport.to_torch(model)
