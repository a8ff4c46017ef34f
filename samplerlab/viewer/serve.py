"""Running the viewer with uvicorn: in the foreground (the CLI) or in a thread (tests,
notebooks).

The listening socket is bound here first, so the URL printed is the port actually in use
(``port=0`` takes a free one), and a server that is stopped and started again on the same
run directories finds every stored judgement in ``ratings.sqlite``.

Example:

```python
import urllib.request
from samplerlab.viewer import Catalog, create_app, running_server

with running_server(create_app(Catalog([run_dir]))) as url:  # run_dir: a finished run
    assert urllib.request.urlopen(url).status == 200
```
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

LOOPBACK_NAMES = ("localhost",)
START_TIMEOUT_S = 15.0


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(app: Any) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    return uvicorn.Server(config)


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C."""
    make_server(app).run(sockets=[sock])


@contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0,
                   timeout: float = START_TIMEOUT_S) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its URL once it answers, and stops it
    (and waits for its thread) on exit."""
    sock = bind(host, port)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="samplerlab-viewer")
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the viewer's server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the viewer's server did not start within {timeout} s")
            time.sleep(0.02)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
