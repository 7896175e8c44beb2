"""``nnport show``: the graph in the browser, offline, with Netron's web app (``pip install
'nnport[show]'``).

Netron's Python package ships the whole viewer as static files; we serve them from a small
local HTTP server of our own, together with the model's folder, so that:
- the page can reach nothing but this server: its Content-Security-Policy gets ``connect-src
  'self'`` (Netron's page otherwise asks ipinfo.io whether to show a cookie banner, and sends
  usage to Google Analytics when it runs as the released package);
- it never blocks on a dialog: the cookie-consent dialog is answered by a cookie, and the
  "please update" dialog that Netron shows 180 days after its build date is off (we set the
  page's date to today);
- only the model's own files are served (by file name, from the model's folder: a ``.param``
  brings its ``.bin``, an ``.onnx`` its external data).

ncnn's ``.param``/``.bin`` are read by Netron itself.  A generated ``.py`` is exported to ONNX
first (its ``load()`` builds the module; ``--input-shape`` gives the example shapes).
"""
from __future__ import annotations

import datetime
import http.server
import os
import re
import tempfile
import threading
import urllib.parse
from pathlib import Path

from .errors import InputError

_VIEWABLE = {".onnx", ".param", ".py"}


def viewer_dir() -> Path:
    try:
        import netron
    except ImportError:
        raise InputError("nnport show needs Netron's viewer: pip install 'nnport[show]' "
                         "(the netron package)") from None
    folder = Path(netron.__file__).parent
    if not (folder / "index.html").is_file():
        raise InputError(f"the netron package at {folder} has no index.html (a broken install?)")
    return folder


_MIME = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
         ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json",
         ".svg": "image/svg+xml", ".woff": "font/woff", ".woff2": "font/woff2",
         ".ttf": "font/ttf", ".gif": "image/gif", ".jpg": "image/jpeg"}


def index_html(viewer: Path, model_name: str) -> bytes:
    """Netron's index.html, made offline and dialog-free (see the module doc)."""
    html = (viewer / "index.html").read_text(encoding="utf-8")
    csp = ("script-src 'self'; frame-src 'none'; connect-src 'self'; "
           "img-src 'self' data: blob:; font-src 'self' data:")
    html, n = re.subn(r'<meta http-equiv="Content-Security-Policy" content="[^"]*">',
                      f'<meta http-equiv="Content-Security-Policy" content="{csp}">', html)
    if n == 0:
        html = html.replace("<head>", f'<head>\n<meta http-equiv="Content-Security-Policy" '
                            f'content="{csp}">', 1)
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    html = re.sub(r'<meta name="date" content="[^"]*">',
                  f'<meta name="date" content="{today}">', html)
    # "0.0.0": Netron's mark of a development build, which sends no usage data
    file_meta = (f'<meta name="version" content="0.0.0">\n<meta name="type" content="Python">\n'
                 f'<meta name="file" content="/data/{urllib.parse.quote(model_name)}">\n'
                 f'<meta name="identifier" content="{_attr(model_name)}">')
    html, n = re.subn(r'<meta name="version" content="[^"]*">', file_meta, html)
    if n == 0:
        html = html.replace("</head>", file_meta + "\n</head>", 1)
    return html.encode("utf-8")


def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


class ViewerServer:
    """A local HTTP server for Netron's page and one model's folder.  ``url`` once started."""

    def __init__(self, model: Path, host: str = "localhost", port: int = 0):
        self.viewer = viewer_dir()
        self.model = model
        self.index = index_html(self.viewer, model.name)
        viewer, folder, index = self.viewer, model.parent, self.index

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # http.server's name
                path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
                if path in ("/", "/index.html"):
                    return self._send(200, index, _MIME[".html"],
                                      {"Set-Cookie": "consent=1; Path=/; SameSite=Strict"})
                if path.startswith("/data/"):
                    name = path[len("/data/"):]
                    target = folder / name
                    # the model's folder only, by plain file name (no sub-paths, no links out)
                    if "/" in name or name in ("", ".", "..") or not target.is_file() or \
                            target.resolve().parent != folder.resolve():
                        return self._send(404, b"not found", "text/plain")
                    return self._send(200, target.read_bytes(), "application/octet-stream")
                rel = path.lstrip("/")
                target = (viewer / rel).resolve()
                if viewer.resolve() not in target.parents or not target.is_file() or \
                        target.suffix not in _MIME:
                    return self._send(404, b"not found", "text/plain")
                return self._send(200, target.read_bytes(), _MIME[target.suffix])

            def do_HEAD(self):
                self.do_GET()

            def _send(self, code, body, ctype, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        try:
            self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise InputError(f"--port {port}: cannot listen on {host}:{port} "
                             f"({exc.strerror or exc})") from None
        self.httpd.daemon_threads = True
        h, p = self.httpd.server_address[:2]
        self.url = f"http://{host if host != '0.0.0.0' else h}:{p}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "ViewerServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def prepare_model(src: str | os.PathLike, workdir: str, input_shapes: dict | None = None) -> Path:
    """The file to show: .onnx and .param as they are; a generated .py exported to ONNX."""
    path = Path(src)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a model file")
    suffix = path.suffix.lower()
    if suffix not in _VIEWABLE:
        raise InputError(f"{path}: nnport show takes .onnx, ncnn .param or a generated .py "
                         f"(got {suffix or 'no suffix'!r})")
    if suffix == ".onnx":
        from .io import load_proto

        load_proto(path)  # a clear one-line error for a file that is not ONNX
        return path.resolve()
    if suffix == ".param":
        try:
            with open(path, "rb") as fh:
                magic = fh.readline().strip()
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
        if magic != b"7767517":
            raise InputError(f"{path}: not an ncnn .param file (no 7767517 magic number)")
        if not path.with_suffix(".bin").is_file():
            raise InputError(f"{path}: weights file {path.with_suffix('.bin').name} not found "
                             "beside it")
        return path.resolve()
    # a generated .py: through its ONNX
    from .torch_export.exporter import export_proto
    from .io import save_model

    proto, _, _ = export_proto(f"{path}:load", input_shapes=input_shapes or {})
    out = Path(workdir) / (path.stem + ".onnx")
    save_model(proto, out)
    return out


def _ctrl_c_stops() -> None:
    """Ctrl-C (SIGINT) stops the server even when this process was started with SIGINT
    ignored or blocked: both are inherited from the parent across exec (a shell's background
    job, a supervisor, a thread of a test runner that masked it), and then the server could
    only be killed."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def show(src: str | os.PathLike, *, host: str = "localhost", port: int = 0, browse: bool = True,
         input_shapes: dict | None = None, block: bool = True, announce=print):
    """Serve ``src`` in Netron's viewer on ``host:port`` (0: any free port) and open the
    browser.  ``block=False`` returns the running :class:`ViewerServer` (call ``stop()``)."""
    viewer_dir()  # fail first when the viewer is missing
    work = tempfile.TemporaryDirectory(prefix="nnport-show-")
    try:
        model = prepare_model(src, work.name, input_shapes)
        server = ViewerServer(model, host, port).start()
    except BaseException:
        work.cleanup()
        raise
    server.workdir = work
    if block:
        _ctrl_c_stops()
    announce(f"showing {src} at {server.url} (offline; Ctrl-C stops)")
    if browse:
        import webbrowser

        webbrowser.open(server.url)
    if not block:
        return server
    try:
        threading.Event().wait()
    finally:
        server.stop()
        work.cleanup()


def read_node_data(path: str | os.PathLike) -> dict:
    """A Model Explorer node-data file (``verify --locate --report`` writes one), checked enough
    to fail here with one line rather than silently in the viewer."""
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--node-data: no such file: {p}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"--node-data: {p} is not a JSON node-data file ({e})") from None
    graphs = data.get("graphsData", data) if isinstance(data, dict) else None
    if (not isinstance(graphs, dict) or not graphs
            or not all(isinstance(g, dict) and isinstance(g.get("results"), dict)
                       for g in graphs.values())):
        raise InputError(f"--node-data: {p} is not Model Explorer node data "
                         "({graph id: {\"results\": {node id: {\"value\": ...}}}})")
    return graphs


def show_node_data(src: str | os.PathLike, node_data: str | os.PathLike, *,
                   host: str = "localhost", port: int = 0, browse: bool = True,
                   announce=print) -> None:
    """Serve ``src`` (the reference .onnx of a ``verify --locate --report``) in Google's Model
    Explorer with the per-node errors coloured on the graph (``pip install 'nnport[show]'``).  Blocks until Ctrl-C.  Netron, the default viewer, has no overlay."""
    src = Path(src)
    if src.suffix.lower() != ".onnx":
        raise InputError(f"--node-data: {src} must be the .onnx model the node data was computed "
                         "on (the reference of verify --locate)")
    if not src.is_file():
        raise InputError(f"no such file: {src}")
    read_node_data(node_data)
    try:
        import model_explorer
        import model_explorer_onnx  # noqa: F401  (the ONNX adapter, loaded by name below)
    except ImportError:
        raise InputError("nnport show --node-data needs Google's Model Explorer and its ONNX "
                         "adapter: pip install 'nnport[show]' (ai-edge-model-explorer, "
                         "model-explorer-onnx)") from None
    if not port:
        import socket

        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    config = (model_explorer.config().add_model_from_path(str(src.resolve()))
              .add_node_data_from_path(str(Path(node_data).resolve())))
    _ctrl_c_stops()
    announce(f"showing {src} with {node_data} in Model Explorer on http://{host}:{port} "
             "(Ctrl-C stops)")
    model_explorer.visualize_from_config(config=config, host=host, port=port,
                                         extensions=["model_explorer_onnx"],
                                         no_open_in_browser=not browse)
