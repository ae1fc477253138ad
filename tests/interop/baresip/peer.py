"""Run baresip 1.0 on 127.0.0.1 for one test, bounded in time, and drive it over ctrl_tcp.

* :class:`Baresip` writes a private config directory from ``config.template`` and
  ``accounts.template`` (free ports picked at start), starts ``timeout -k 2 N baresip -f DIR -t M``
  in its own session (process group), waits until the control socket accepts, and in
  :meth:`Baresip.stop` asks it to quit, then kills the group by its id. baresip quits by itself
  after ``lifetime`` seconds (``-t``) and ``timeout`` backs that up, so nothing outlives a test.
* Direct mode: the account does not register (``regint=0``) and we send INVITEs straight to its
  SIP port. Registrar mode (``registrar=(port, password)``): ``sip:<user>@lab.local`` registers
  with digest through ``sip:127.0.0.1:<port>`` (Kamailio) and is called through it.
* The ``sndfile`` module dumps, per call, what baresip encoded (``*-enc.wav``) and what it
  decoded from our RTP (``*-dec.wav``); :meth:`Baresip.recording` reads the latter.
* :class:`Control` speaks ctrl_tcp: netstring-framed JSON commands (``dial``, ``hangup``,
  ``listcalls``, ``quit``), responses matched by token, and events (``CALL_ESTABLISHED``,
  ``CALL_RTPESTAB``, ``CALL_CLOSED`` ...) collected as they come.

Gotchas from the interop lab: ausine only produces 48 kHz stereo (answering G.711 without
``ausrc_srate 48000`` / ``ausrc_channels 2`` fails with 486); ``net_interface`` must be an
address, not ``lo``; the stdio UI cannot run without a terminal (ctrl_tcp and cons instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 5.0
RTP_PORTS = 10
"""Size of baresip's RTP port range (one call needs one port with rtcp-mux)."""


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_range(count: int, *, tries: int = 50) -> tuple[int, int]:
    """``count`` consecutive UDP ports that are free on every address right now."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(30000, 60000 - count)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("0.0.0.0", p))  # baresip binds its RTP sockets to 0.0.0.0
            return base, base + count - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range")


# -- ctrl_tcp -----------------------------------------------------------------------------------------


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


def read_netstrings(buf: bytearray) -> list[bytes]:
    """Take every complete netstring off the front of ``buf``."""
    out = []
    while True:
        i = buf.find(b":")
        if i < 0 or not buf[:i].isdigit():
            break
        end = i + 1 + int(buf[:i])
        if len(buf) < end + 1:
            break
        out.append(bytes(buf[i + 1:end]))
        del buf[:end + 1]
    return out


class Control:
    """A ctrl_tcp connection: ``command()`` waits for its response; events pile up in ``events``."""

    def __init__(self, port: int, *, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(0.1)
        self.buf = bytearray()
        self.events: list[dict[str, Any]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        self._token = 0

    def _pump(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            except OSError:
                return
            if not data:
                return
            self.buf.extend(data)
            for raw in read_netstrings(self.buf):
                msg = json.loads(raw.decode(errors="replace"))
                if msg.get("event"):
                    self.events.append(msg)
                elif "token" in msg:
                    self.responses[str(msg["token"])] = msg

    def command(self, command: str, params: str | None = None, *, timeout: float = 3.0) -> dict[str, Any]:
        self._token += 1
        token = f"t{self._token}"
        msg: dict[str, Any] = {"command": command, "token": token}
        if params:
            msg["params"] = params
        self.sock.sendall(netstring(json.dumps(msg).encode()))
        end = time.monotonic() + timeout
        while token not in self.responses and time.monotonic() < end:
            self._pump(end)
        if token not in self.responses:
            raise TimeoutError(f"baresip did not answer {command!r} within {timeout} s")
        return self.responses.pop(token)

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for ev in self.events:
                if ev.get("type") == kind:
                    return ev
            self._pump(min(end, time.monotonic() + 0.1))
        raise TimeoutError(f"no {kind} event from baresip within {timeout} s; got {self.event_types()}")

    def poll(self) -> None:
        self._pump(time.monotonic() + 0.05)

    def event_types(self) -> list[str]:
        return [str(ev.get("type")) for ev in self.events]

    def close(self) -> None:
        self.sock.close()


# -- the process ----------------------------------------------------------------------------------------


class Baresip:
    """One baresip instance with one account ``sip:<user>@127.0.0.1:<sip_port>``."""

    def __init__(self, workdir: Path, *, user: str = "bob", codecs: str = "pcma", mediaenc: str | None = None,
                 audio_source: str = "ausine,440", lifetime: int = 30,
                 registrar: tuple[int, str] | None = None, domain: str = "lab.local") -> None:
        self.dir = workdir
        self.user = user
        self.registrar = registrar
        self.domain = domain
        self.codecs = codecs
        self.mediaenc = mediaenc
        self.audio_source = audio_source
        self.lifetime = lifetime
        self.sip_port = free_port()
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        self.cons_port = free_port()
        self.rtp_ports = free_port_range(RTP_PORTS)
        self.snd_dir = workdir / "snd"
        self.log_path = workdir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctl: Control | None = None

    @property
    def uri(self) -> str:
        if self.registrar is not None:
            return f"sip:{self.user}@{self.domain}"
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.snd_dir.mkdir(exist_ok=True)
        values = {
            "@SIPPORT@": str(self.sip_port), "@CTRLPORT@": str(self.ctrl_port), "@CONSPORT@": str(self.cons_port),
            "@RTPPORTS@": f"{self.rtp_ports[0]}-{self.rtp_ports[1]}", "@SNDPATH@": str(self.snd_dir),
            "@AUDIO_SOURCE@": self.audio_source, "@USER@": self.user, "@CODECS@": self.codecs,
            "@MEDIAENC@": f";mediaenc={self.mediaenc}" if self.mediaenc else "",
            "@DOMAIN@": self.domain if self.registrar else f"127.0.0.1:{self.sip_port}",
            "@REGISTRATION@": "regint=0" if self.registrar is None else
            f'auth_pass={self.registrar[1]};outbound="sip:127.0.0.1:{self.registrar[0]}";regint=60',
        }
        for name in ("config", "accounts"):
            text = (HERE / f"{name}.template").read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (self.dir / name).write_text(text)
        (self.dir / "contacts").write_text("")

    def start(self) -> Baresip:
        self.write_config()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["timeout", "-k", "2", str(self.lifetime + 5), "baresip", "-f", str(self.dir), "-t", str(self.lifetime)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited at start (rc {self.proc.returncode}):\n{self.log()}")
            with contextlib.suppress(OSError):
                self.ctl = Control(self.ctrl_port)
                if "baresip is ready" in self.log():
                    return self
                self.ctl.close()
                self.ctl = None
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"baresip did not come up within {START_TIMEOUT} s:\n{self.log()}")

    def wait_log(self, text: str, timeout: float = 5.0) -> None:
        """Until ``text`` shows up in baresip's log."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log():
                return
            time.sleep(0.05)
        raise TimeoutError(f"baresip did not log {text!r} within {timeout} s:\n{self.log()[-2000:]}")

    def wait_registered(self, timeout: float = 5.0) -> None:
        """Registrar mode: until baresip logs the registrar's 200 OK."""
        self.wait_log(f"{self.user}@{self.domain}: {{0/UDP/v4}} 200 OK", timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Ask baresip to quit; kill its process group (by the id we started) if it does not."""
        proc = self.proc
        if proc is None:
            return
        if self.ctl is not None:
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                self.ctl.command("quit", timeout=1.0)
            self.ctl.close()
            self.ctl = None
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=3)
        self.proc = None

    def recording(self, which: str = "dec") -> tuple[np.ndarray, int]:
        """The last call's sndfile dump: ``dec`` = what baresip received from us, ``enc`` = what it sent.

        Returns mono int16 samples (first channel) and the sample rate.
        """
        files = sorted(self.snd_dir.glob(f"dump-*-{which}.wav"))
        if not files:
            raise FileNotFoundError(f"no {which} recording in {self.snd_dir}; log:\n{self.log()}")
        with wave.open(str(files[-1])) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm[::channels].astype(np.int16), rate
