"""Every command README.md documents runs as written: the ``nnport ...`` lines of its bash blocks
(each ``[optional part]`` once left out and once in) and its ``import nnport`` Python block, run
from a fresh folder that holds the files the commands name (model.onnx, in.onnx, x.npy, net.py,
mypkg/models.py, traced.pt), built here.  A README command that is added or changed is picked up
by the parser, so the docs cannot drift from what the code accepts."""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from util import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
SUBCOMMANDS = ("convert", "verify", "inspect", "simplify", "extract", "edit", "export", "demo",
               "show")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _variants(cmd: str) -> list[str]:
    """``a [b] [c]`` -> ``a`` and ``a b c``."""
    if "[" not in cmd:
        return [cmd]
    bare = " ".join(re.sub(r"\[[^\]]*\]", " ", cmd).split())
    full = " ".join(re.sub(r"\[([^\]]*)\]", r" \1 ", cmd).split())
    return [bare, full]


def readme_commands() -> list[str]:
    out = []
    for block in _blocks("bash"):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0]
            for part in line.split("&&"):
                m = re.search(r"(?:^|[\s/])(nnport (\w+)\b.*)$", part.strip())
                if m and m.group(2) in SUBCOMMANDS:
                    out += _variants(" ".join(m.group(1).split()))
    return out


def test_readme_commands_are_found():
    cmds = readme_commands()
    assert any(c.startswith("nnport convert model.onnx out/model.py") for c in cmds)
    assert any(c.startswith("nnport export net.py:make_model") for c in cmds)
    assert "nnport demo nnport-demo" in cmds
    assert len(cmds) >= 20, cmds


NET = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def make_model():
    torch.manual_seed(0)
    return Net()
'''

MODELS = '''
import torch


class ResNet(torch.nn.Module):
    """Not a ResNet: a conv with a residual connection, enough for the README's example."""
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)) + x
'''


def _model_onnx() -> onnx.ModelProto:
    """Inputs named as the README's commands name them: ``input`` (an image with dynamic
    batch and size) and ``x`` (a small static vector)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    b = numpy_helper.from_array(np.linspace(-1, 1, 4, dtype=np.float32), "b")
    k = numpy_helper.from_array(np.linspace(0.5, 2, 4, dtype=np.float32), "k")
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["features"], name="relu"),
             helper.make_node("Mul", ["x", "k"], ["m"], name="mul"),
             helper.make_node("Sigmoid", ["m"], ["score"], name="sigmoid")]
    g = helper.make_graph(
        nodes, "readme",
        [helper.make_tensor_value_info("input", T.FLOAT, ["N", 3, "H", "W"]),
         helper.make_tensor_value_info("x", T.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("features", T.FLOAT, ["N", 4, "H", "W"]),
         helper.make_tensor_value_info("score", T.FLOAT, [1, 4])], [w, b, k])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _in_onnx() -> onnx.ModelProto:
    """Tensors named as simplify/extract/edit's examples name them: input ``x``; ``a, b`` ->
    ``c, d``; ``old``; ``some_tensor``."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Mul", ["a", "b"], ["d"]),
             helper.make_node("Relu", ["c"], ["old"]),
             helper.make_node("Add", ["old", "d"], ["some_tensor"]),
             helper.make_node("Identity", ["some_tensor"], ["ident"]),
             helper.make_node("Neg", ["ident"], ["y"])]
    g = helper.make_graph(nodes, "in", [helper.make_tensor_value_info("x", T.FLOAT,
                                                                       ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", T.FLOAT, ["N", 3, "H", "W"])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture()
def workdir(tmp_path):
    import torch

    onnx.save(_model_onnx(), tmp_path / "model.onnx")
    onnx.save(_in_onnx(), tmp_path / "in.onnx")
    np.save(tmp_path / "x.npy", np.arange(4, dtype=np.float32).reshape(1, 4) / 4)
    (tmp_path / "net.py").write_text(NET)
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(MODELS)
    class Small(torch.nn.Module):  # forward's parameter is the README's `x`
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return torch.relu(self.conv(x))

    torch.manual_seed(0)
    traced = torch.jit.trace(Small(), torch.zeros(1, 3, 8, 8))
    torch.jit.save(traced, str(tmp_path / "traced.pt"))
    return tmp_path


def _check(cmd: str, rc: int, out: str, err: str, cwd: Path) -> None:
    assert rc == 0, f"README command failed: {cmd}\nexit {rc}\n{out[-2000:]}\n{err[-2000:]}"
    assert "Traceback" not in out + err, cmd
    argv = shlex.split(cmd)
    if argv[1] in ("convert", "verify") and "--no-verify" not in argv:
        assert "MATCH" in out or '"match": true' in out, (cmd, out)
    if argv[1] in ("convert", "simplify", "extract", "edit", "export") and "--check" not in argv:
        dst = next(a for a in argv[3:] if not a.startswith("-"))
        assert (cwd / dst).is_file(), (cmd, dst)
    if "--report" in argv:
        page = cwd / argv[argv.index("--report") + 1]
        assert page.read_text().startswith("<!DOCTYPE html>"), cmd
        assert page.with_name(page.stem + ".nodedata.json").is_file(), cmd


@pytest.mark.slow
def test_readme_commands_run_as_written(workdir):
    cmds = readme_commands()
    for cmd in cmds:
        if cmd.split()[1] == "show":
            continue  # needs a browser or a server: tests/cli/test_show.py
        rc, out, err = run_cli(*shlex.split(cmd)[1:], cwd=workdir)
        _check(cmd, rc, out, err, workdir)
        if cmd.startswith("nnport extract"):
            m = onnx.load(workdir / "out.onnx")
            assert [i.name for i in m.graph.input] == ["a", "b"]
            assert [o.name for o in m.graph.output] == ["c", "d"]
        if cmd.startswith("nnport edit"):
            m = onnx.load(workdir / "out.onnx")
            assert "some_tensor" in [o.name for o in m.graph.output]
            assert any("new" in n.output for n in m.graph.node)
            assert m.opset_import[0].version == 18
    assert (workdir / "out" / "model.pt").is_file()
    assert (workdir / "nnport-demo").is_dir()


@pytest.mark.slow
def test_readme_python_block_runs_as_written(workdir, monkeypatch):
    block = next(b for b in _blocks("python") if b.startswith("import nnport"))
    monkeypatch.chdir(workdir)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 -- our own README
    assert scope["result"].report.ok and scope["report"].ok
    assert scope["report"].inputs["input"]["shape"] == [2, 3, 224, 224]
    assert scope["info"]["inputs"][0]["name"] == "input"
    assert os.path.isfile(workdir / "out" / "model.py")
