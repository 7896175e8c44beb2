"""Load a Keras file or a SavedModel folder once per process and describe its inputs/outputs.

Both the ONNX loader and the TensorFlow runner use it, so the ONNX input/output names and the
runner's names are the same by construction.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

_CACHE: dict = {}


def import_tf(path: Path):
    """(tensorflow, tf2onnx), or the one-line error that names the extra to install."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet_stderr("tensorflow" not in sys.modules):
            import tensorflow as tf
            import tf2onnx
    except ImportError:
        raise InputError(f"{path}: TensorFlow sources need the tf extra: "
                         "pip install 'nnport[tf]'") from None
    return tf, tf2onnx


@contextlib.contextmanager
def _quiet_stderr(active: bool):
    """TensorFlow's C++ runtime logs a banner to fd 2 while it loads, whatever
    TF_CPP_MIN_LOG_LEVEL says; our errors are one line, so hide it during the import."""
    if not active:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


@dataclass
class TFModel:
    path: Path
    kind: str  # "keras" or "saved_model"
    obj: object  # keras.Model, or the serving signature (ConcreteFunction)
    input_names: list[str]
    input_shapes: list[tuple]  # None for unknown dims
    input_dtypes: list[np.dtype]
    output_names: list[str]

    def tensor_specs(self):
        tf = import_tf(self.path)[0]
        return [tf.TensorSpec(s, tf.as_dtype(d), name=n)
                for n, s, d in zip(self.input_names, self.input_shapes, self.input_dtypes)]

    def call(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        tf = import_tf(self.path)[0]
        tensors = [tf.convert_to_tensor(a) for a in arrays]
        if self.kind == "keras":
            out = self.obj(tensors[0] if len(tensors) == 1 else tensors, training=False)
            outs = tf.nest.flatten(out)
        else:
            out = self.obj(**dict(zip(self._sig_keys, tensors)))
            outs = [out[k] for k in self.output_names]
        return [np.asarray(o.numpy() if hasattr(o, "numpy") else o) for o in outs]


_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-/]")


def _clean(names: list[str], fallback: str) -> list[str]:
    out: list[str] = []
    for i, n in enumerate(names):
        n = _NAME_RE.sub("_", str(n or "")).strip("/") or f"{fallback}_{i}"
        if not re.match(r"[A-Za-z0-9.]", n):
            n = f"{fallback}_{n}"
        base, k = n, 1
        while n in out:
            n, k = f"{base}_{k}", k + 1
        out.append(n)
    return out


def _shape(s) -> tuple:
    return tuple(None if d is None else int(d) for d in s)


def _load_keras(path: Path) -> TFModel:
    import_tf(path)
    import keras

    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot load as a Keras model ({_one_line(exc)})") from None
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise InputError(f"{path}: the Keras model has no defined inputs (a subclassed model "
                         "that was never built?); save a functional or Sequential model")
    names = _clean([getattr(t, "name", None) for t in inputs], "input")
    shapes = [_shape(t.shape) for t in inputs]
    dtypes = [np.dtype(str(getattr(t, "dtype", "float32"))) for t in inputs]
    outs = getattr(model, "outputs", None) or []
    out_names = _clean([getattr(t, "name", None) for t in outs], "output")
    try:
        out_names = _clean(list(model.output_names), "output") if len(model.output_names) == \
            len(outs) else out_names
    except Exception:
        pass
    return TFModel(path, "keras", model, names, shapes, dtypes, out_names)


def _load_saved_model(path: Path) -> TFModel:
    tf = import_tf(path)[0]
    try:
        obj = tf.saved_model.load(str(path))
    except Exception as exc:
        raise InputError(f"{path}: cannot load as a TensorFlow SavedModel ({_one_line(exc)})") \
            from None
    sigs = getattr(obj, "signatures", {}) or {}
    if "serving_default" not in sigs:
        raise InputError(f"{path}: the SavedModel has no 'serving_default' signature "
                         f"(signatures: {', '.join(sigs) or 'none'})")
    fn = sigs["serving_default"]
    args, kwargs = fn.structured_input_signature
    if args:
        raise InputError(f"{path}: the serving signature takes positional inputs; expected "
                         "named ones")
    keys = list(kwargs)
    outs = fn.structured_outputs
    out_keys = list(outs) if isinstance(outs, dict) else []
    if not out_keys:
        raise InputError(f"{path}: the serving signature has no named outputs")
    m = TFModel(path, "saved_model", fn, _clean(keys, "input"),
                [_shape(kwargs[k].shape) for k in keys],
                [np.dtype(kwargs[k].dtype.as_numpy_dtype) for k in keys], out_keys)
    m._sig_keys = keys
    m._keep = obj  # the signature needs its owner alive
    return m


def load_tf_model(path: Path) -> TFModel:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise InputError(f"{path}: is a folder without saved_model.pb (not a TensorFlow "
                             "SavedModel)")
        kind = "saved_model"
    else:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: file is empty")
        kind = "keras"
    key = (str(path.resolve()), (path / "saved_model.pb" if path.is_dir() else path)
           .stat().st_mtime_ns)
    if key not in _CACHE:
        _CACHE.clear()  # one model at a time: TensorFlow models are large
        _CACHE[key] = _load_saved_model(path) if kind == "saved_model" else _load_keras(path)
    return _CACHE[key]
