"""How the verifier loads a generated model.py: as its load() would, the weights read once."""
import torch

import nnport
from nnport.verify.torch_runner import load_generated
from tools.cnn import cnn_model


def _convert(tmp_path):
    py = tmp_path / "model.py"
    nnport.convert(cnn_model(), py, verify=False)
    return py


def test_generated_load_is_reproduced_with_the_same_weights(tmp_path):
    py = _convert(tmp_path)
    ns = {"__file__": str(py), "__name__": "m"}
    exec(compile(py.read_text(), str(py), "exec"), ns)
    want = ns["load"]()
    got = load_generated(py)
    assert not got.training
    a, b = want.state_dict(), got.state_dict()
    assert list(a) == list(b)
    for k in a:  # the same tensors, none left on the meta device
        assert b[k].device.type == "cpu" and torch.equal(a[k], b[k]), k
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(got(x), want(x))


def test_an_edited_load_is_what_runs(tmp_path):
    py = _convert(tmp_path)
    src = py.read_text()
    marker = '    return model.eval()\n'
    assert src.count(marker) == 1
    py.write_text(src.replace(marker, '    model.edited_by_hand = True\n' + marker))
    assert getattr(load_generated(py), "edited_by_hand", False)


def test_a_weights_file_that_is_not_safetensors_is_one_line(tmp_path):
    """The verifier's own reader says what is wrong with the file ("unpack requires a buffer
    of 8 bytes" before)."""
    import pytest

    from nnport.errors import InputError

    py = _convert(tmp_path)
    py.with_suffix(".safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"model\.py: load\(\) failed: .*not a \.safetensors file"):
        load_generated(py)
