"""Names from a model are data, never code."""
import ast
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import nnport
from nnport.convert import generate_torch

EVIL = [
    'x"); __import__("os").system("touch {marker}"); ("',
    "y'\n__import__('os').system('touch {marker}')\n#",
    "z\\\"\"\"; import os; os.system('touch {marker}') #",
    "class",
    "self",
    "torch",
    "0abc",
    "ümlaut/名前:0",
    "",
]


def hostile_model(marker: str) -> onnx.ModelProto:
    names = [n.format(marker=marker) for n in EVIL]
    x, y = names[0], names[1]
    w = numpy_helper.from_array(np.full((3,), 2.0, np.float32), names[2])
    nodes = [
        helper.make_node("Add", [x, y], [names[3]], name=names[4],
                         doc_string=f'"""; import os; os.system("touch {marker}")'),
        helper.make_node("Mul", [names[3], names[2]], [names[5]], name=names[6]),
        helper.make_node("Relu", [names[5]], [names[7]], name=names[1]),
        helper.make_node("Neg", [names[7]], ["self.out"], name=names[8]),
    ]
    graph = helper.make_graph(
        nodes, names[0],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info(y, TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info(names[7], TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("self.out", TensorProto.FLOAT, [3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name=f'evil"""\nimport os; os.system("touch {marker}")',
                              doc_string=f'"""\nos.system("touch {marker}")')
    return model


def test_hostile_names_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    model = hostile_model(str(marker))
    onnx.checker.check_model(model)
    source, _ = generate_torch(model)
    compile(source, "model.py", "exec")  # the file is valid Python
    tree = ast.parse(source)
    called = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not called & {"system", "__import__", "exec", "popen"}, called
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"os", "math", "typing", "torch", "safetensors"}, imported
    p = tmp_path / "evil.onnx"
    onnx.save(model, p)
    result = nnport.convert(p, tmp_path / "model.py")
    assert result.ok
    m = nnport.to_torch(model)
    a = np.array([1, -2, 3], np.float32)
    b = np.array([0.5, 0.5, -9], np.float32)
    import torch

    out, neg = m(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(out.detach().numpy(), np.maximum((a + b) * 2.0, 0))
    np.testing.assert_allclose(neg.detach().numpy(), -np.maximum((a + b) * 2.0, 0))
    assert not marker.exists()
    assert not os.path.exists(str(marker))


