"""The "only have an ONNX model" chain: ONNX -> ``nnport convert model.pt`` (traced TorchScript)
-> pnnx -> ncnn, checked against onnxruntime.  Needs the anchors environment's pnnx.

    .venv/bin/python benchmarks/pnnx_chain.py [--pnnx /work/anchors/bin/pnnx] [--keep DIR]

Builds small ResNet-like and MobileNet-like nets with plain torch (random weights, BatchNorm
statistics randomized), exports each with torch.onnx (TorchScript exporter), converts the ONNX
file to ``model.pt`` with nnport, runs pnnx on it, loads the ``.ncnn.param``/``.ncnn.bin`` pnnx
writes in the ``ncnn`` Python package, and prints one row per model and step.  Not a test: pnnx
is not a project dependency.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def _nets():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Bottleneck(nn.Module):
        def __init__(self, cin, mid, stride):
            super().__init__()
            cout = mid * 4
            self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(mid)
            self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return F.relu(y + (x if self.down is None else self.down(x)))

    class ResNetLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.layer1 = nn.Sequential(Bottleneck(16, 8, 1), Bottleneck(32, 8, 1))
            self.layer2 = nn.Sequential(Bottleneck(32, 16, 2), Bottleneck(64, 16, 1))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.layer2(self.layer1(self.stem(x)))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    class MobileLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish(),
                nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.SiLU(),
                nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.Hardswish())
            self.fc = nn.Linear(32, 5)

        def forward(self, x):
            return self.fc(self.body(x).mean((2, 3)))

    def randomize(m, seed):
        g = torch.Generator().manual_seed(seed)
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                with torch.no_grad():
                    mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                    mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
        return m.eval()

    torch.manual_seed(0)
    return {"resnet_like": randomize(ResNetLike(), 1), "mobile_like": randomize(MobileLike(), 2)}


def run(pnnx: str, work: str, shape=(1, 3, 64, 64)) -> list[tuple]:
    import onnx
    import onnxruntime as ort
    import torch

    import nnport

    rows = []
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for name, net in _nets().items():
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        onnx_path = os.path.join(d, "model.onnx")
        torch.onnx.export(net, (torch.from_numpy(x),), onnx_path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
        ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(
            None, {"input": x})[0]
        t = time.perf_counter()
        pt = os.path.join(d, "model.pt")
        res = nnport.convert(onnx_path, pt)
        rows.append((name, "onnx -> .pt (nnport)", "ok" if res.ok else "MISMATCH",
                     f"{time.perf_counter() - t:.1f}s", "; ".join(res.notes)))
        t = time.perf_counter()
        proc = subprocess.run([pnnx, "model.pt", f"inputshape=[{','.join(map(str, shape))}]"],
                              cwd=d, capture_output=True, text=True, timeout=600)
        param = os.path.join(d, "model.ncnn.param")
        ok = proc.returncode == 0 and os.path.exists(param)
        rows.append((name, ".pt -> ncnn (pnnx)", "ok" if ok else f"exit {proc.returncode}",
                     f"{time.perf_counter() - t:.1f}s",
                     "" if ok else (proc.stderr or proc.stdout).strip().splitlines()[-1:]))
        if not ok:
            continue
        import ncnn

        net_ = ncnn.Net()
        net_.load_param(param)
        net_.load_model(os.path.join(d, "model.ncnn.bin"))
        ex = net_.create_extractor()
        ex.input("in0", ncnn.Mat(x[0]).clone())
        _, out = ex.extract("out0")
        got = np.array(out).reshape(ref.shape)
        err = float(np.abs(got - ref).max())
        rows.append((name, "ncnn vs onnxruntime", "ok" if err < 1e-3 else "MISMATCH", "",
                     f"max_abs={err:.2e}"))
        onnx.load(onnx_path)  # (the file is intact)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pnnx", default="/work/anchors/bin/pnnx")
    ap.add_argument("--keep", help="folder for the files (default: a temporary one)")
    args = ap.parse_args()
    if not os.path.exists(args.pnnx):
        print(f"pnnx not found at {args.pnnx}", file=sys.stderr)
        return 2
    work = args.keep or tempfile.mkdtemp(prefix="nnport_pnnx_")
    try:
        rows = run(args.pnnx, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'model':12s} {'step':24s} {'result':10s} {'time':7s} note")
    for r in rows:
        print(f"{r[0]:12s} {r[1]:24s} {r[2]:10s} {r[3]:7s} {r[4]}")
    return 0 if all(r[2] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
