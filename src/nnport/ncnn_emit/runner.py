"""Run a .param/.bin pair in the ncnn Python package (``ncnn.Net``, ``load_param``,
``load_model``, extractor ``input``/``extract`` by blob name).

Feeds drop the batch axis of 1; outputs get it back.  Which outputs had it dropped, and their
order, is recorded in the .param by ``Noop`` layers named ``nnport_output_<i>_<layout>``
reading each graph output (ncnn never runs a layer whose output nobody extracts), and each
input's layout by its ``Input`` layer's name, ``nnport_input_<layout>_<name>``.  Layouts:
``1`` batch of 1 dropped, ``0`` held whole, ``m<N>`` a rank-5 (N, C, D, H, W) tensor held as
(N*C, D, H, W) (``merged.py``): fed and read back by a reshape, ``s`` a scalar (rank 0), held
as one element and read back as rank 0.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError, VerificationError

_META = re.compile(r"^nnport_output_(\d+)_([01s]|m\d+)$")
_INPUT = re.compile(r"^nnport_input_([01s]|m\d+)_")
SCALAR = "s"


def _layout(code: str):
    """True (batch of 1 dropped), False (held whole), N (batch of N merged) or ``SCALAR``."""
    if code == SCALAR:
        return SCALAR
    return int(code[1:]) if code.startswith("m") else code == "1"


def read_inputs(param_path) -> dict[str, bool | int]:
    """{blob: layout} for the inputs nnport wrote (Input layers named
    ``nnport_input_<layout>_<name>``): True batch axis dropped, False held whole, N a rank-5
    batch of N merged into the channels."""
    out = {}
    for line in Path(param_path).read_text(encoding="utf-8", errors="replace").splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "Input":
            m = _INPUT.match(parts[1])
            if m:
                out[parts[4]] = _layout(m.group(1))
    return out


def read_outputs(param_path) -> list[tuple[str, bool | int]]:
    lines = Path(param_path).read_text(encoding="utf-8", errors="replace").splitlines()
    split_src, found, inputs = {}, [], set()
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        typ, name, nb, nt = parts[0], parts[1], int(parts[2]), int(parts[3])
        bottoms, tops = parts[4:4 + nb], parts[4 + nb:4 + nb + nt]
        if typ == "Input":
            inputs.update(tops)
        if typ == "Split" and bottoms[0] not in inputs:
            # read by its source's name; an input's copy is extracted as the copy (light mode
            # releases the fed input once consumed, and an Input layer cannot make it again)
            for t in tops:
                split_src[t] = bottoms[0]
        m = _META.match(name)
        if typ == "Noop" and m and bottoms:
            found.append((int(m.group(1)), split_src.get(bottoms[0], bottoms[0]),
                          _layout(m.group(2))))
    return [(b, d) for _, b, d in sorted(found)]


class NcnnRunner:
    kind = "ncnn"

    def __init__(self, param_path, specs=None, threads: int = 1):
        try:
            import ncnn
        except ImportError:
            raise InputError("running .param files needs the ncnn package "
                             "(pip install 'nnport[ncnn]')") from None
        param_path = Path(param_path)
        bin_path = param_path.with_suffix(".bin")
        if not bin_path.is_file():
            raise InputError(f"{param_path}: weights file {bin_path.name} not found beside it")
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads
        self.net.opt.use_fp16_storage = False
        self.net.opt.use_fp16_packed = False
        self.net.opt.use_fp16_arithmetic = False
        self.net.opt.use_bf16_storage = False
        if self.net.load_param(str(param_path)) != 0:
            raise InputError(f"{param_path}: ncnn cannot parse this .param file")
        if self.net.load_model(str(bin_path)) != 0:
            raise InputError(f"{bin_path}: ncnn cannot load the weights")
        self.outputs = read_outputs(param_path)
        if not self.outputs:
            self.outputs = [(n, True) for n in self.net.output_names()]
        self.output_names = [n for n, _ in self.outputs]
        self.input_names = list(self.net.input_names())
        self.input_drop = read_inputs(param_path)
        self.path = str(param_path)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ex, keep = self._fed(feeds, light=True)
        return self._read_outputs(ex)

    def blob_shapes(self, feeds: dict[str, np.ndarray], names) -> dict[str, tuple]:
        """The shape (outermost first: c, d, h, w) ncnn computes for each named blob, fed as
        ``run`` feeds; a blob ncnn cannot compute is left out."""
        tops = set()  # the blobs this .param has (a fused-away one is not asked for)
        for line in Path(self.path).read_text(encoding="utf-8", errors="replace").splitlines()[2:]:
            parts = line.split()
            if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
                tops.update(parts[4 + int(parts[2]):4 + int(parts[2]) + int(parts[3])])
        ex, keep = self._fed(feeds, light=False)
        out = {}
        for name in (n for n in names if n in tops):
            ret, mat = ex.extract(name)
            if ret != 0 or mat.empty():
                continue
            out[name] = {1: (mat.w,), 2: (mat.h, mat.w), 3: (mat.c, mat.h, mat.w),
                         4: (mat.c, mat.d, mat.h, mat.w)}[mat.dims]
        return out

    def _fed(self, feeds, light: bool):
        import ncnn

        ex = self.net.create_extractor()
        ex.set_light_mode(light)
        from .graph import sanitize

        keep = []

        for name, arr in feeds.items():
            a = np.asarray(arr)
            drop = self.input_drop.get(sanitize(name))
            if drop is None:  # a .param from elsewhere: a leading 1 is the batch
                drop = a.ndim >= 2 and a.shape[0] == 1
                if a.ndim >= 2 and a.shape[0] != 1:
                    raise InputError(f"input {name!r}: ncnn runs a batch of 1, got {a.shape[0]}")
            if drop == SCALAR:
                a = a.reshape(1)
            elif not isinstance(drop, bool):  # a rank-5 batch of N, merged
                if a.ndim != 5 or a.shape[0] != drop:
                    raise InputError(f"input {name!r}: converted for shape (N={drop}, C, D, H, "
                                     f"W), got {a.shape}")
                a = a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:])
            elif drop:
                if a.shape[0] != 1:
                    raise InputError(f"input {name!r}: ncnn runs a batch of 1, got {a.shape[0]}")
                a = a[0]
            a = np.ascontiguousarray(a, dtype=np.float32)
            keep.append(a)
            mat = ncnn.Mat(a).clone()  # ncnn owns its copy: in-place layers may write to it
            keep.append(mat)
            ex.input(sanitize(name), mat)
        return ex, keep

    def _read_outputs(self, ex) -> list[np.ndarray]:
        outs = []
        for name, dropped in self.outputs:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise VerificationError(f"ncnn failed to compute {name!r} (error {ret})")
            if mat.empty():  # the ncnn package's array conversion crashes on an empty Mat
                raise VerificationError(f"ncnn returned no data for {name!r}")
            y = np.array(mat).copy()
            if dropped == SCALAR:
                outs.append(y.reshape(()) if y.size == 1 else y)
                continue
            if not isinstance(dropped, bool):  # merged: (N*C, ...) -> (N, C, ...)
                y = y.reshape((dropped, -1) + y.shape[1:])
            outs.append(y[None] if dropped is True else y)
        return outs
