"""Headless Chromium for the interop tests: launch it bounded in time, serve it a page, collect a report.

How a test drives a browser:

* :class:`PageHost` is a tiny aiohttp server on 127.0.0.1 that serves ``tests/interop/jssip/www``
  (the pages and the JsSIP bundle built by ``install.sh``) and talks to each page by id:
  ``GET /config/<id>`` hands the page its configuration, ``POST /log/<id>`` streams its progress
  lines, ``POST /mark/<id>/<name>`` signals a milestone the test can wait for (``registered``,
  ``media``), ``POST /report/<id>`` delivers the result.
  No DevTools protocol is needed: the page reports over plain HTTP on the same origin.
* :class:`Chromium` starts ``chromium --headless`` with a fresh ``--user-data-dir`` and the flags
  below, in its own session (process group), and kills that group by its id when done.
* WebRTC in Chromium gathers every interface address. ``--allow-loopback-in-peer-connection``
  adds 127.0.0.1, but in the machine's namespace Chromium would also offer (and check from) the
  machine's own address. :func:`in_private_netns` wraps a command so that it runs in a fresh
  network namespace holding only ``lo`` (``unshare --net``, needs root): there 127.0.0.1 is the
  only candidate, and nothing can leave the machine. The namespace dies with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

WWW = Path(__file__).resolve().parent / "jssip" / "www"
BUNDLE = WWW / "jssip.bundle.js"

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--enable-logging=stderr", "--v=0",
)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def in_private_netns(argv: list[str]) -> list[str]:
    """``argv`` run in a new network namespace with only ``lo`` (up): 127.0.0.1 and nothing else."""
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *argv]


def run_isolated_scenario(script: Path, name: str, *, timeout: float, result_prefix: str,
                          cwd: Path) -> dict[str, Any]:
    """Run ``script name`` in a private network namespace, in its own session (killed as a group
    however it ends); return the JSON on its last ``result_prefix`` line, or fail the test."""
    import subprocess
    import sys
    import time

    import pytest

    argv = in_private_netns([sys.executable, str(script), name])
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"scenario {name} did not finish in time\n{err[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the scenario's session
    lines = [ln for ln in out.splitlines() if ln.startswith(result_prefix)]
    if not lines:
        pytest.fail(f"scenario {name} exited {proc.returncode} without a result\n{out[-2000:]}\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(result_prefix):])
    result["elapsed"] = time.monotonic() - started
    result["stderr"] = err.splitlines()[-80:]
    return result


class PageHost:
    """Serves the pages and collects what they report (one entry per page id)."""

    def __init__(self, www: Path = WWW) -> None:
        self.www = www
        self.configs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[str]] = {}
        self._reports: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._marks: dict[tuple[str, str], asyncio.Event] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add_page(self, page_id: str, config: dict[str, Any]) -> str:
        """Register a page's configuration; returns the URL Chromium should open."""
        self.configs[page_id] = config
        self.logs[page_id] = []
        self._reports[page_id] = asyncio.get_running_loop().create_future()
        return f"{self.base_url}/ua.html?id={page_id}"

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/config/{id}", self._config)
        app.router.add_post("/log/{id}", self._log)
        app.router.add_post("/mark/{id}/{name}", self._mark)
        app.router.add_post("/report/{id}", self._report)
        app.router.add_get("/favicon.ico", self._no_content)
        app.router.add_static("/", self.www)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        server: Any = site._server
        port = int(server.sockets[0].getsockname()[1])
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _mark_event(self, page_id: str, name: str) -> asyncio.Event:
        key = (page_id, name)
        if key not in self._marks and len(self._marks) < 1000:
            self._marks[key] = asyncio.Event()
        return self._marks[key]

    async def wait_mark(self, page_id: str, name: str, timeout: float) -> None:
        """Until the page posts ``/mark/<page_id>/<name>`` (TimeoutError otherwise)."""
        await asyncio.wait_for(self._mark_event(page_id, name).wait(), timeout)

    async def wait_report(self, page_id: str, timeout: float) -> dict[str, Any]:
        return await asyncio.wait_for(asyncio.shield(self._reports[page_id]), timeout)

    def _page(self, request: web.Request) -> str:
        page_id = request.match_info["id"]
        if page_id not in self.configs:
            raise web.HTTPNotFound()
        return page_id

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(self.configs[self._page(request)])

    async def _log(self, request: web.Request) -> web.Response:
        page_id = self._page(request)
        if len(self.logs[page_id]) < 2000:
            self.logs[page_id].append(await request.text())
        return web.Response(status=204)

    async def _mark(self, request: web.Request) -> web.Response:
        self._mark_event(self._page(request), request.match_info["name"]).set()
        return web.Response(status=204)

    async def _report(self, request: web.Request) -> web.Response:
        page_id = self._page(request)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise web.HTTPBadRequest() from None
        fut = self._reports[page_id]
        if not fut.done():
            fut.set_result(body)
        return web.Response(status=204)

    async def _no_content(self, request: web.Request) -> web.Response:
        return web.Response(status=204)


class Chromium:
    """One headless Chromium process (group), bounded by ``lifetime`` seconds and killed by its id."""

    def __init__(self, url: str, *, lifetime: float = 60.0, binary: str | None = None,
                 extra_flags: tuple[str, ...] = ()) -> None:
        self.url = url
        self.lifetime = lifetime
        self.binary = binary or chromium_binary() or "chromium"
        self.extra_flags = extra_flags
        self.proc: asyncio.subprocess.Process | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._stderr_path: Path | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.stderr_lines: list[str] = []
        """Chromium's stderr once stopped (the profile directory is removed by then)."""

    async def start(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-interop-")
        self._stderr_path = Path(self._profile.name) / "chromium.stderr"
        argv = [self.binary, *CHROMIUM_FLAGS, *self.extra_flags,
                f"--user-data-dir={self._profile.name}/profile", self.url]
        with open(self._stderr_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                start_new_session=True)
        self._watchdog = asyncio.get_running_loop().call_later(self.lifetime, self._kill, signal.SIGKILL)

    def _kill(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # the group we created: the browser and its helpers

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.proc is not None:
            self._kill(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 3.0)
            except TimeoutError:
                self._kill(signal.SIGKILL)
                await self.proc.wait()
            # helpers (renderer, zygote) that outlived the browser share its group id
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stderr_lines = self._read_stderr()
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def _read_stderr(self) -> list[str]:
        """Chromium's stderr (console messages, WebRTC errors), minus the harmless dbus noise."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return []
        lines = self._stderr_path.read_text(errors="replace").splitlines()
        return [ln for ln in lines if "dbus" not in ln and "unexpected operator" not in ln][-200:]

    async def __aenter__(self) -> Chromium:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
