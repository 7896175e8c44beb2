"""Latency of a converted scikit-learn random forest: the generated PyTorch module against
onnxruntime running the skl2onnx file and against scikit-learn's own ``predict_proba``.

    python benchmarks/ml_forest.py [--trees 100] [--depth 12] [--batch 10000] [--runs 15]
                                   [--threads 2]

A RandomForestClassifier is fitted on generated data (20 features, 3 classes), converted with
skl2onnx (zipmap off: probabilities stay a tensor) and with ``nnport.to_torch``.  The three are
timed round-robin on one batch after a warm-up; the table shows medians in ms and ratios to
onnxruntime.  Outputs are checked to agree (labels exact, probabilities 1e-5) before timing.
Also prints which tree strategy the generated code uses (GEMM for depth <= 3, batched
traversal otherwise).
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import nnport

    torch.set_num_threads(args.threads)
    X, y = make_classification(20000, 20, n_informative=10, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    rf = RandomForestClassifier(args.trees, max_depth=args.depth, random_state=0,
                                n_jobs=args.threads).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = to_onnx(rf, X[:1], target_opset={"": 17, "ai.onnx.ml": 3},
                        options={"zipmap": False})
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    module = nnport.to_torch(proto)
    convert_s = time.perf_counter() - t0
    src = type(module).forward.__code__.co_names
    strategy = "gemm" if "_tree_gemm" in src else "traversal"

    xb = np.random.default_rng(1).standard_normal((args.batch, 20)).astype(np.float32)
    xt = torch.from_numpy(xb)
    ref_label, ref_prob = sess.run(None, {"X": xb})
    with torch.inference_mode():
        label, prob = module(xt)
    assert np.array_equal(label.numpy(), ref_label), "labels differ from onnxruntime"
    assert np.abs(prob.numpy() - ref_prob).max() < 1e-5, "probabilities differ from onnxruntime"

    def run_ort():
        sess.run(None, {"X": xb})

    def run_torch():
        with torch.inference_mode():
            module(xt)

    def run_sklearn():
        rf.predict_proba(xb)

    fns = {"onnxruntime": run_ort, "nnport torch": run_torch, "scikit-learn": run_sklearn}
    times = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(args.runs):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"RandomForestClassifier: {args.trees} trees, max_depth {args.depth}, batch "
          f"{args.batch}, {args.threads} threads, {args.runs} runs (medians); generated code "
          f"uses the {strategy} strategy; conversion took {convert_s:.2f} s")
    print(f"| {'runtime':<14} | {'ms':>9} | {'vs onnxruntime':>14} |")
    print(f"|{'-' * 16}|{'-' * 11}|{'-' * 16}|")
    for k, v in med.items():
        print(f"| {k:<14} | {v:9.1f} | {v / med['onnxruntime']:13.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
