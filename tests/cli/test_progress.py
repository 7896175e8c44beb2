"""The progress bar: on a terminal only, never with --quiet, never in pipes."""
import os
import pty
import subprocess
import sys

import onnx

from nnport.demo import make_small_cnn


def _run_in_pty(args, env):
    """Run the CLI with stderr (and stdout) on a pseudo-terminal; returns everything it wrote."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "nnport.cli", *map(str, args)], stdout=slave,
                         stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=300)
    os.close(master)
    return p.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_and_not_with_quiet(tmp_path):
    onnx.save(make_small_cnn(), tmp_path / "m.onnx")
    env = dict(os.environ, NNPORT_PROGRESS_DELAY="0")
    env.pop("NNPORT_QUIET", None)
    rc, out = _run_in_pty(["convert", tmp_path / "m.onnx", tmp_path / "a.py"], env)
    assert rc == 0, out
    assert "nnport: generating PyTorch code [" in out and "writing weights" in out
    rc, out = _run_in_pty(["convert", tmp_path / "m.onnx", tmp_path / "b.py", "--quiet"], env)
    assert rc == 0, out
    assert "generating PyTorch code" not in out and "MATCH" in out


def test_no_progress_bar_in_a_pipe(tmp_path):
    onnx.save(make_small_cnn(), tmp_path / "m.onnx")
    env = dict(os.environ, NNPORT_PROGRESS_DELAY="0")
    p = subprocess.run([sys.executable, "-m", "nnport.cli", "convert", str(tmp_path / "m.onnx"),
                        str(tmp_path / "c.py")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "" and "nnport: generating" not in p.stdout
