"""formats.FORMATS: every reference in the table resolves, and the table answers as the
registries it replaced did."""
from __future__ import annotations

from pathlib import Path

import pytest

from nnport import formats


@pytest.mark.parametrize("fmt", formats.FORMATS, ids=lambda f: f.name)
def test_every_reference_resolves(fmt):
    for ref in (fmt.target, fmt.runner, fmt.loader):
        if ref is not None:
            assert callable(formats.resolve(ref)), ref


def test_cli_modules_import():
    for mod in formats.CLI_MODULES:
        assert formats.available(mod), mod


def test_targets_by_suffix():
    assert sorted(formats.targets()) == [".onnx", ".param", ".pt", ".py"]
    assert formats.target_for(".PY").__name__ == "convert_to_torch"
    assert formats.target_for(".pth") is None  # a TorchScript source, not an output


def test_runners_and_loaders(tmp_path):
    for name in ("m.param", "m.pt", "m.pth", "m.pt2", "m.keras", "m.h5"):
        assert formats.has_runner(tmp_path / name), name
    assert not formats.has_runner(tmp_path / "m.onnx")  # onnxruntime: verify's own
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    assert formats.has_runner(saved)
    assert formats.source_loader(saved) is not None
    assert formats.source_loader(tmp_path / "m.keras") is not None
    assert formats.source_loader(tmp_path / "m.onnx") is None
    assert formats.source_loader(tmp_path) is None  # a plain folder is not a SavedModel


def test_source_path_carries_options():
    src = formats.SourcePath(Path("a/b.keras"), nchw=True)
    assert str(src) == "a/b.keras" and Path(src).suffix == ".keras"
    assert formats.source_options(src) == {"nchw": True}
    assert formats.source_options("a/b.keras") == {}


def test_nothing_registers_on_import():
    """The registries filled by import side effects are gone (the table replaces them)."""
    import nnport.convert
    import nnport.io
    import nnport.verify

    assert not hasattr(nnport.convert, "TARGETS") and not hasattr(nnport.convert, "_load_targets")
    assert not hasattr(nnport.verify, "RUNNERS") and not hasattr(nnport.io, "SOURCE_LOADERS")
