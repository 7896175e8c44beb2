"""``nnport.compile``: torch.compile set up for CPU inference, the recipe measured against
onnxruntime in ``benchmarks/perf_runtime.py``.

It is plain ``torch.compile`` (inductor) with these settings:

- **Weight freezing** (inductor's ``freezing`` option). Parameters become constants of the
  compiled graph, convolution and linear weights are packed once for oneDNN or MKL, and
  BatchNorm folds into the convolution before it.
- **``torch.inference_mode()`` around every call.** Freezing only applies to a graph that
  records no gradients.
- **fp32 linear layers through oneDNN, not MKL.** Inductor packs an fp32 linear for MKL when
  its batch dimension is static, and for oneDNN when it is dynamic. The MKL in torch's wheel
  takes its generic code path on AMD CPUs. On the EPYC machine this was measured on, a
  (128×768)·(768×3072) product took 5.6 ms in MKL, 3.2 ms in oneDNN and 3.3 ms in onnxruntime
  (the GEMM shapes of a BERT-base FFN, 2 threads). While it compiles this module, inductor
  takes its own oneDNN branch for every fp32 linear: the one it takes for a dynamic batch
  dimension.
- **Linears that share an input become one** (inductor's ``cpp.enable_concat_linear``): an
  attention block's q, k and v projections are one GEMM with the weights side by side, which
  the machine runs closer to its peak than three narrow ones (ViT-tiny 2–5% faster).
- **A convolution of a one-pixel image is a multiply and a sum.** Squeeze-and-excitation blocks
  pool the image to one pixel and run two 1×1 convolutions on it: matrix-vector products.
  torch calls oneDNN for each convolution and builds oneDNN's primitive for it again on every
  call (10–20 µs before it computes; ``ONEDNN_VERBOSE=all`` shows a ``create`` per ``exec``). Written as ``(x * w).sum(-1)``, inductor fuses the
  product with the pooling before it and the activation after it into its own loops.
  timm's MobileNetV3-Large and EfficientNet-B0 run 11% faster with it, interleaved with the
  oneDNN version in one process (``benchmarks/perf_one_pixel_sums.py``).
- **A C++ wrapper** (inductor's ``cpp_wrapper``): the compiled graph calls its kernels from
  C++, not from Python. This matters most for small models with many kernels.
- **No guards on the module** (``torch.compiler.skip_guard_on_all_nn_modules_unsafe``). Freezing
  already makes the compiled module a snapshot of the module: its weights and attributes are
  read when it compiles. Each call still checks its inputs (shapes and dtypes, so a new shape
  compiles again) and the global state. On MobileNetV3 the guards took 261 µs per call, 47 µs
  without the module's.

None of it is needed to run the generated code, which imports only torch and safetensors. The
module docstring of ``benchmarks/perf_runtime.py`` gives the plain-torch recipe (freezing and
inference_mode).
"""
from __future__ import annotations

import contextlib
import inspect
import threading
from typing import Any, Callable

import torch

from .errors import InputError

# The inductor methods the linear choice replaces, with the parameters they have in the torch
# versions this was written against. If they change, the choice is left to inductor.
_EXPECTED = {
    "pack_linear_weight": ["self", "graph", "is_lp_weight", "transpose_weight_node",
                           "batch_size"],
    "pack_linear": ["self", "graph", "is_lp_weight", "batch_size", "input",
                    "packed_weight_node", "bias"],
}
# The largest one-pixel convolution written as a sum, the largest measured: MobileNetV3's
# largest is 960×240, and its 960→1280 classifier as a sum was as fast as in oneDNN. Larger
# ones are left to oneDNN.
_SUM_MAX_WEIGHTS = 1280 * 960
_lock = threading.RLock()
_depth = 0


def _device_op_class() -> Any:
    """inductor's CPU packing class, when its two methods look as expected; else None."""
    try:
        from torch._inductor.fx_passes import mkldnn_fusion
    except ImportError:
        return None
    cls = getattr(mkldnn_fusion, "CpuMkldnnDeviceOp", None)
    if cls is None:
        return None
    for name, params in _EXPECTED.items():
        fn = getattr(cls, name, None)
        if fn is None or list(inspect.signature(fn).parameters) != params:
            return None
    return cls


def _reorder_op() -> Any:
    return torch.ops.mkldnn._reorder_linear_weight


def _onednn_pack_weight(original: Callable) -> Callable:
    def pack_linear_weight(self, graph, is_lp_weight, transpose_weight_node, batch_size):
        if is_lp_weight or not isinstance(batch_size, int):
            return original(self, graph, is_lp_weight, transpose_weight_node, batch_size)
        return graph.create_node("call_function", _reorder_op(),
                                 args=(transpose_weight_node, batch_size))
    pack_linear_weight.nnport_original = original  # type: ignore[attr-defined]
    return pack_linear_weight


def _onednn_pack_linear(original: Callable) -> Callable:
    def pack_linear(self, graph, is_lp_weight, batch_size, input, packed_weight_node, bias):
        if packed_weight_node.target not in (_reorder_op(), _reorder_op().default):
            return original(self, graph, is_lp_weight, batch_size, input,
                            packed_weight_node, bias)
        return graph.create_node("call_function", torch.ops.mkldnn._linear_pointwise.default,
                                 (input, packed_weight_node, bias, "none", [], ""))
    pack_linear.nnport_original = original  # type: ignore[attr-defined]
    return pack_linear


@contextlib.contextmanager
def onednn_linear():
    """Inside: inductor packs fp32 linears for oneDNN (see the module docstring). Nested and
    concurrent uses share one patch, undone when the last one leaves."""
    global _depth
    with _lock:
        if _depth == 0:
            cls = _device_op_class()
            if cls is not None:
                cls.pack_linear_weight = _onednn_pack_weight(cls.pack_linear_weight)
                cls.pack_linear = _onednn_pack_linear(cls.pack_linear)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                from torch._inductor.fx_passes import mkldnn_fusion

                cls = getattr(mkldnn_fusion, "CpuMkldnnDeviceOp", None)
                for name in _EXPECTED:
                    original = getattr(getattr(cls, name, None), "nnport_original", None)
                    if original is not None:
                        setattr(cls, name, original)


class CompiledModule:
    """What ``nnport.compile`` returns: call it as the module. ``.module`` is the module it
    compiled. Outputs are inference tensors (``torch.inference_mode``)."""

    def __init__(self, module: torch.nn.Module, compiled: Callable):
        self.module = module
        self._compiled = compiled

    def __call__(self, *args, **kwargs):
        from torch._inductor import config

        # Dynamo reads the flag while it traces (parameters become graph constants) and
        # inductor while it compiles; torch.compile's options= reach neither (torch 2.13).
        # A compile can happen on any call (a new shape), so every call sets it: about 6 µs.
        before = config.freezing
        config.freezing = True
        try:
            with torch.inference_mode():
                return self._compiled(*args, **kwargs)
        finally:
            config.freezing = before

    def __repr__(self) -> str:
        return f"nnport.compile({type(self.module).__name__})"


def compile(module: torch.nn.Module, *, mode: str | None = None, dynamic: bool | None = None,
            fullgraph: bool = False) -> CompiledModule:
    """``module`` compiled for CPU inference: eval mode, inductor weight freezing, calls under
    inference_mode, fp32 linears in oneDNN (those sharing an input as one), one-pixel
    convolutions as sums, a C++ wrapper, no guards on the module (see the module docstring).
    ``mode``, ``dynamic`` and ``fullgraph`` are torch.compile's. The result is a snapshot:
    weights and attributes are read when a call compiles; change them and call
    ``nnport.compile`` again. The module is put in eval mode.
    Each call sets inductor's global ``freezing`` flag while it runs: a module another thread
    compiles at that moment is frozen too."""
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"nnport.compile takes a torch.nn.Module, not {type(module).__name__}")
    if mode is not None and mode not in torch._inductor.list_mode_options():
        known = ", ".join(sorted(torch._inductor.list_mode_options()))
        raise InputError(f"nnport.compile: unknown mode {mode!r}; use one of {known}")
    options = {**(torch._inductor.list_mode_options(mode) if mode else {}),
               "freezing": True, "cpp_wrapper": True, "cpp.enable_concat_linear": True}
    module.eval()
    compiled = torch.compile(
        module, backend=_inductor(options), dynamic=dynamic, fullgraph=fullgraph,
        options={"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe})
    return CompiledModule(module, compiled)


def _static_shape(node: Any) -> tuple[int, ...] | None:
    value = node.meta.get("example_value") if isinstance(node, torch.fx.Node) else None
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float32:
        return None
    shape = tuple(value.shape)
    return shape if all(type(d) is int for d in shape) else None


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def one_pixel_convs_as_sums(gm: torch.fx.GraphModule) -> int:
    """Rewrite, in a dynamo graph, each fp32 ``conv2d`` of a single one-pixel image by a 1×1
    kernel with no padding and one group as ``(x * w).sum(-1) + b`` (see the module
    docstring). Returns how many it rewrote."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.conv2d or len(node.args) < 2:
            continue
        x, w = node.args[0], node.args[1]
        xs, ws = _static_shape(x), _static_shape(w)
        if xs is None or ws is None or len(xs) != 4 or xs[0] != 1 or xs[2:] != (1, 1):
            continue
        if len(ws) != 4 or ws[2:] != (1, 1) or ws[1] != xs[1] or ws[0] * ws[1] > _SUM_MAX_WEIGHTS:
            continue
        padding = _arg(node, 4, "padding", 0)
        if _arg(node, 6, "groups", 1) != 1 or not (
                padding in ("valid", "same") or all(p == 0 for p in (
                    padding if isinstance(padding, (tuple, list)) else (padding,)))):
            continue
        bias = _arg(node, 2, "bias", None)
        out_ch, in_ch = ws[0], ws[1]
        graph = gm.graph
        with graph.inserting_before(node):
            product = graph.call_function(torch.mul, (
                graph.call_method("reshape", (x, 1, 1, in_ch)),
                graph.call_method("reshape", (w, 1, out_ch, in_ch))))
            out = graph.call_method("sum", (product, -1))
            if bias is not None:
                out = graph.call_function(torch.add, (out, bias))
            out = graph.call_method("reshape", (out, 1, out_ch, 1, 1))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        count += 1
    if count:
        gm.recompile()
    return count


def _inductor(options: dict) -> Callable:
    """inductor as a torch.compile backend, compiling with ``options`` and the oneDNN linear
    choice: nothing is patched outside compilation. One-pixel convolutions become sums first."""
    def backend(gm, example_inputs):
        from torch._inductor import config
        from torch._inductor.compile_fx import compile_fx

        one_pixel_convs_as_sums(gm)
        with config.patch(options), onednn_linear():
            return compile_fx(gm, example_inputs)
    return backend
