"""Example 3: an SRCNN-like super-resolution network, trained for a few steps on synthetic images,
exported to ONNX with a *dynamic upscale factor* through a custom interpolation op, run in
onnxruntime and compared with PyTorch image by image.

The upscaling is a custom PyTorch op (``nnport_examples::upscale``: bicubic resize by a scale
given as a tensor input).  ONNX does not know it, so ``nnport.torch_export.custom_ops`` maps it
onto the standard ONNX ``Resize`` node (mode "cubic", half-pixel coordinates: the same arithmetic
as ``F.interpolate(mode="bicubic")``), which onnxruntime runs.

    python examples/super_resolution.py [OUT_DIR]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnport.torch_export import custom_ops, export


@torch.library.custom_op("nnport_examples::upscale", mutates_args=())
def upscale(x: Tensor, scale: Tensor) -> Tensor:
    """Bicubic upscaling of NCHW images by a runtime scale factor (a 0-d tensor)."""
    return F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)


@upscale.register_fake
def _(x, scale):
    ctx = torch.library.get_ctx()  # the output size depends on the scale's value
    return x.new_empty((x.shape[0], x.shape[1], ctx.new_dynamic_size(), ctx.new_dynamic_size()))


def upscale_to_onnx(x, scale):
    """The ONNX translation of ``upscale`` (an onnxscript function of standard ONNX ops)."""
    from onnxscript import opset18 as op

    s = op.Reshape(op.CastLike(scale, op.Constant(value_float=1.0)), op.Constant(value_ints=[1]))
    scales = op.Concat(op.Constant(value_floats=[1.0, 1.0]), s, s, axis=0)
    return op.Resize(x, None, scales, mode="cubic", cubic_coeff_a=-0.75,
                     coordinate_transformation_mode="half_pixel")


class SRCNN(nn.Module):
    """Upscale, then SRCNN's three convolutions (9x9 feature extraction, 1x1 mapping, 5x5
    reconstruction) predict a residual."""

    def __init__(self, c1: int = 32, c2: int = 16):
        super().__init__()
        self.extract = nn.Conv2d(1, c1, 9, padding=4)
        self.map = nn.Conv2d(c1, c2, 1)
        self.rebuild = nn.Conv2d(c2, 1, 5, padding=2)

    def forward(self, image, scale):
        up = upscale(image, scale)
        return up + self.rebuild(torch.relu(self.map(torch.relu(self.extract(up)))))


def synthetic_images(n: int, size: int, gen: torch.Generator) -> Tensor:
    """Smooth random images: sums of a few oriented sinusoids with random phases."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    imgs = torch.zeros(n, 1, size, size)
    for _ in range(4):
        f = torch.rand(n, 2, 1, 1, generator=gen) * 12
        ph = torch.rand(n, 1, 1, 1, generator=gen) * 6.28
        imgs += torch.sin(f[:, :1] * xx * 6.28 + f[:, 1:] * yy * 6.28 + ph)[:, None, 0]
    return imgs / 4


def train(model: SRCNN, steps: int = 30, scale: float = 2.0) -> list[float]:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        hr = synthetic_images(8, 32, gen)
        lr = F.interpolate(hr, scale_factor=1 / scale, mode="area")
        loss = F.mse_loss(model(lr, torch.tensor(scale)), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)  # images span about [-1, 1]


def main(out_dir: str | Path | None = None) -> dict:
    import onnxruntime as ort

    out = Path(out_dir or tempfile.mkdtemp(prefix="nnport-sr-"))
    torch.manual_seed(0)
    model = SRCNN()
    losses = train(model)
    model.eval()
    print(f"trained {len(losses)} steps: loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    custom_ops.register(torch.ops.nnport_examples.upscale.default, upscale_to_onnx)
    try:
        res = export(model, out / "srcnn.onnx",
                     inputs={"image": torch.randn(1, 1, 16, 16), "scale": torch.tensor(2.0)},
                     dynamic={"image": {0: "batch", 2: "height", 3: "width"}})
    finally:
        custom_ops.unregister(torch.ops.nnport_examples.upscale.default)
    assert res.ok, res.report.lines()

    sess = ort.InferenceSession(str(out / "srcnn.onnx"), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    results = []
    for scale, size in [(2.0, 20), (3.0, 16), (1.5, 24)]:  # the factor changes at run time
        lr = F.interpolate(synthetic_images(2, int(size * scale), gen), size=(size, size),
                           mode="area")
        with torch.no_grad():
            ref = model(lr, torch.tensor(scale)).numpy()
        got = sess.run(None, {"image": lr.numpy(), "scale": np.array(scale, np.float32)})[0]
        assert got.shape == ref.shape == (2, 1, int(size * scale), int(size * scale))
        p = psnr(got, ref)
        results.append((scale, got.shape, p))
        print(f"scale {scale}: {tuple(got.shape)} onnxruntime vs torch PSNR {p:.1f} dB, "
              f"max abs diff {np.abs(got - ref).max():.2e}")
        assert p > 80, "onnxruntime's images differ from PyTorch's"
    return {"onnx": out / "srcnn.onnx", "losses": losses, "results": results}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
