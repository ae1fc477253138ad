"""Shared helpers for the interop tests: free ports, bounded peer processes, Kamailio and sipp.

What every helper here guarantees (RULES.md, interop tests):

* Peers listen on 127.0.0.1 only, on ports found free when the peer starts (:func:`free_port`).
* Every process is bounded twice: by the peer's own limit where it has one (sipp ``-timeout``,
  ``-m``) and by ``timeout -k 2 LIFETIME`` around it. It runs in its own session, so
  :meth:`PeerProcess.stop` can end the whole process group (Kamailio forks workers) by the id of
  the process we started: SIGTERM, a grace period, then SIGKILL. Nothing is ever killed by name.
* Process liveness is checked with ``waitid(..., WNOWAIT)``: the leader is reaped only after its
  group was signalled, so the group id cannot have been reused by then.

Pieces:

* :class:`PeerProcess`: start / :meth:`~PeerProcess.wait_for_log` / :meth:`~PeerProcess.stop`.
* :func:`wait_for_port`: a TCP port accepting, or a UDP port bound (``/proc/net/udp``).
* :class:`Kamailio` renders ``kamailio/kamailio.cfg`` (``@SIP_PORT@``-style placeholders: ports, password,
  control socket) into a private runtime dir, starts it with ``-DD -E -Y DIR``, and is ready once
  it answers OPTIONS over UDP and accepts TCP and WebSocket connections. :meth:`Kamailio.kamcmd`
  queries it (``ul.lookup``). The ``kamailio`` fixture (module scope; import
  :func:`kamailio_fixture` into the test module) does all that, after ``require("kamailio", "kamcmd")``.
* :class:`Sipp` builds sipp command lines for the scenarios in ``sipp/`` and reads sipp's
  statistics file (``-trace_stat``): successful/failed calls, retransmissions, call rate.
  :meth:`Sipp.run` runs to completion (UAC); :meth:`Sipp.start` runs in the background (UAS).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import require

HERE = Path(__file__).resolve().parent
KAMAILIO_CFG = HERE / "kamailio" / "kamailio.cfg"
SIPP_DIR = HERE / "sipp"
DOMAIN = "lab.local"
PASSWORD = "secret"
LOCALHOST = "127.0.0.1"


class PeerError(RuntimeError):
    """A peer did not start, or did not do what the test waited for (message has its log tail)."""


# -- ports ------------------------------------------------------------------------------------------
def free_port(kind: str = "udp", host: str = LOCALHOST) -> int:
    """A port free right now for ``kind`` ``"udp"``, ``"tcp"`` or ``"both"`` (same number for both)."""
    for _ in range(50):
        first = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, first) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if kind != "both":
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise PeerError(f"no free {kind} port on {host}")


def _udp_bound(port: int) -> bool:
    needle = f":{port:04X} "
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) > 1 and (fields[1] + " ").endswith(needle):
                    return True
    return False


def wait_for_port(port: int, kind: str = "tcp", *, host: str = LOCALHOST, timeout: float = 5.0,
                  process: PeerProcess | None = None) -> None:
    """Until ``host:port`` accepts TCP connections (``kind="tcp"``) or a UDP socket is bound to it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if kind == "udp":
            if _udp_bound(port):
                return
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.2)
                if s.connect_ex((host, port)) == 0:
                    return
        if process is not None and not process.alive():
            raise PeerError(f"{process.name} exited before {kind} port {port} was ready:\n{process.log_tail()}")
        time.sleep(0.02)
    tail = f":\n{process.log_tail()}" if process is not None else ""
    raise PeerError(f"{kind} port {host}:{port} not ready after {timeout:g} s{tail}")


# -- processes --------------------------------------------------------------------------------------
class PeerProcess:
    """One peer program run as ``timeout -k 2 LIFETIME argv...`` in its own session, output to a log."""

    def __init__(self, name: str, argv: Sequence[str], *, lifetime: float, log_path: Path,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.lifetime = lifetime
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PeerProcess:
        if shutil.which("timeout") is None:
            raise PeerError("coreutils `timeout` is needed to bound peer processes")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["timeout", "-k", "2", f"{self.lifetime:g}", *self.argv], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise PeerError(f"{self.name} was not started")
        return self.proc.pid

    def alive(self) -> bool:
        """Still running (does not reap the process, so its group id stays ours)."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in the log; PeerError when the process exits or time is up."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.log())
            if m is not None:
                return m
            if not self.alive():
                raise PeerError(f"{self.name} exited without logging {pattern!r}:\n{self.log_tail()}")
            if time.monotonic() > end:
                raise PeerError(f"{self.name} did not log {pattern!r} within {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.02)

    def wait(self, timeout: float) -> int:
        """Exit status once the process ends by itself (PeerError after ``timeout``; it keeps running)."""
        end = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > end:
                raise PeerError(f"{self.name} still running after {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.02)
        return self._reap()

    def _reap(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self._signal_group(signal.SIGKILL)  # leftovers of the group, before the id can be reused
        return self.proc.wait()

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.returncode is not None:
            return self.proc.returncode
        self._signal_group(signal.SIGTERM)
        end = time.monotonic() + grace
        while self.alive() and time.monotonic() < end:
            time.sleep(0.02)
        self._signal_group(signal.SIGKILL)
        return self.proc.wait()


# -- Kamailio ---------------------------------------------------------------------------------------
def render_kamailio_cfg(values: dict[str, str | int], template: Path = KAMAILIO_CFG) -> str:
    """The config with every ``@KEY@`` placeholder replaced; an unknown placeholder left over is an error."""
    text = template.read_text("utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if left:
        raise PeerError(f"{template.name}: no value for {', '.join(left)}")
    return text


def _options_ping(port: int, timeout: float = 0.3) -> bool:
    """Does a SIP server on 127.0.0.1:port answer an OPTIONS over UDP?"""
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, 0))
        lport = s.getsockname()[1]
        msg = (f"OPTIONS sip:{LOCALHOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {LOCALHOST}:{lport};branch={branch}\r\n"
               f"From: <sip:probe@{LOCALHOST}>;tag=probe\r\nTo: <sip:{LOCALHOST}:{port}>\r\n"
               f"Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        s.settimeout(timeout)
        s.sendto(msg.encode(), (LOCALHOST, port))
        try:
            data = s.recv(4096)
        except OSError:
            return False
        return data.startswith(b"SIP/2.0 200")


class Kamailio:
    """Kamailio on 127.0.0.1: UDP+TCP ``sip_port``, WebSocket ``ws_port``, runtime files in ``workdir``."""

    def __init__(self, workdir: Path, *, lifetime: float = 300.0, defines: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.lifetime = lifetime
        self.defines = list(defines)
        self.sip_port = 0
        self.ws_port = 0
        self.ctl = workdir / "ctl"
        self.process: PeerProcess | None = None

    @property
    def udp(self) -> str:
        return f"udp:{LOCALHOST}:{self.sip_port}"

    @property
    def tcp(self) -> str:
        return f"tcp:{LOCALHOST}:{self.sip_port}"

    @property
    def ws(self) -> str:
        return f"ws:{LOCALHOST}:{self.ws_port}"

    def proxy(self, transport: str) -> str:
        """``transport:127.0.0.1:port`` (the CLI's --proxy form) for udp, tcp or ws."""
        return {"udp": self.udp, "tcp": self.tcp, "ws": self.ws}[transport]

    def start(self, *, attempts: int = 3, ready_timeout: float = 10.0) -> Kamailio:
        """Render the config with fresh ports and start; retried when a port was taken meanwhile."""
        error: PeerError | None = None
        for _ in range(attempts):
            self.sip_port = free_port("both")
            self.ws_port = free_port("tcp")
            cfg = self.workdir / "kamailio.cfg"
            cfg.write_text(render_kamailio_cfg({"SIP_PORT": self.sip_port, "WS_PORT": self.ws_port,
                                                "PASSWORD": PASSWORD, "CTL_SOCK": self.ctl}))
            argv = ["kamailio", "-f", cfg, "-DD", "-E", "-m", "64", "-M", "8", "-Y", self.workdir,
                    "-w", self.workdir]
            for d in self.defines:
                argv += ["-A", d]
            self.process = PeerProcess("kamailio", argv, lifetime=self.lifetime,
                                       log_path=self.workdir / "kamailio.log", cwd=self.workdir).start()
            try:
                self._wait_ready(ready_timeout)
                return self
            except PeerError as exc:
                error = exc
                self.process.stop()
        raise error or PeerError("kamailio did not start")

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        end = time.monotonic() + timeout
        wait_for_port(self.sip_port, "tcp", timeout=timeout, process=self.process)
        wait_for_port(self.ws_port, "tcp", timeout=max(0.1, end - time.monotonic()), process=self.process)
        while not _options_ping(self.sip_port):
            if not self.process.alive():
                raise PeerError(f"kamailio exited:\n{self.process.log_tail()}")
            if time.monotonic() > end:
                raise PeerError(f"kamailio does not answer OPTIONS on udp {self.sip_port}:\n{self.process.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return self.process.log() if self.process is not None else ""

    def kamcmd(self, *args: str, timeout: float = 5.0) -> str:
        """Run ``kamcmd -s unix:CTL args...``; its output (stdout and stderr)."""
        proc = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", *args], capture_output=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
        return (proc.stdout + proc.stderr).decode("utf-8", "replace")

    def contacts(self, user: str) -> list[str]:
        """The contact URIs usrloc holds for ``user@lab.local`` (empty when not registered)."""
        out = self.kamcmd("ul.lookup", "location", f"{user}@{DOMAIN}")
        return re.findall(r"Address:\s*(\S+)", out)


@pytest.fixture(scope="module", name="kamailio")
def kamailio_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    """A Kamailio for the test module (users ``*@lab.local``, password ``secret``), stopped afterwards."""
    require("kamailio", "kamcmd")
    kam = Kamailio(tmp_path_factory.mktemp("kamailio"))
    try:
        kam.start()
        yield kam
    finally:
        kam.stop()


# -- sipp ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SippStats:
    """Cumulative counters from sipp's last ``-trace_stat`` row."""

    successful: int
    failed: int
    retransmissions: int
    call_rate: float
    """Calls per second over the whole run (sipp's CallRate(C))."""
    elapsed: float
    """Seconds from the first to the last row (sipp's ElapsedTime(C))."""
    response_time_ms: float
    """Average of response time 1 (e.g. INVITE -> 200 with ``start_rtd``/``rtd``), in ms."""


def _seconds(text: str) -> float:
    """sipp's ``HH:MM:SS:mmmmmm`` (or ``HH:MM:SS``) as seconds."""
    parts = text.strip().split(":")
    try:
        h, m, s = int(parts[0]), int(parts[1]), int(parts[2])
        frac = int(parts[3]) / 1e6 if len(parts) > 3 else 0.0
    except (IndexError, ValueError):
        return 0.0
    return h * 3600 + m * 60 + s + frac


def read_sipp_stats(path: Path) -> SippStats | None:
    """Parse a ``-trace_stat`` CSV (``;`` separated, header row first); None when absent or empty."""
    try:
        rows = list(csv.reader(path.read_text("utf-8", "replace").splitlines(), delimiter=";"))
    except OSError:
        return None
    rows = [r for r in rows if r]
    if len(rows) < 2:
        return None
    row = dict(zip(rows[0], rows[-1], strict=False))

    def num(name: str) -> float:
        try:
            return float(row.get(name, "0") or 0)
        except ValueError:
            return 0.0

    return SippStats(successful=int(num("SuccessfulCall(C)")), failed=int(num("FailedCall(C)")),
                     retransmissions=int(num("Retransmissions(C)")), call_rate=num("CallRate(C)"),
                     elapsed=_seconds(row.get("ElapsedTime(C)", "")),
                     response_time_ms=_seconds(row.get("ResponseTime1(C)", "")) * 1000)


@dataclass(frozen=True, slots=True)
class SippResult:
    returncode: int
    stats: SippStats | None
    log: str
    """sipp's stdout/stderr plus its error file (unexpected messages)."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.stats is not None and self.stats.failed == 0


class Sipp:
    """One sipp run: a scenario from ``tests/interop/sipp`` (or built-in ``uac``/``uas``), files in ``workdir``."""

    def __init__(self, workdir: Path, scenario: str, *, name: str | None = None, local_port: int | None = None,
                 remote: str | None = None, calls: int = 1, rate: float | None = None,
                 rate_period_ms: int | None = None, limit: int | None = None, timeout: float = 20.0,
                 inf: str | None = None, service: str | None = None, pause_ms: int | None = None,
                 transport: str = "udp", trace_messages: bool = True, extra: Sequence[str] = ()) -> None:
        require("sipp")
        self.workdir = workdir
        self.name = name or Path(scenario).stem
        self.local_port = local_port or free_port("both" if transport == "tcp" else "udp")
        self.timeout = timeout
        self.stat_file = workdir / f"{self.name}_stats.csv"
        self.error_file = workdir / f"{self.name}_errors.log"
        self.message_file = workdir / f"{self.name}_messages.log"
        argv = ["sipp"]
        if remote is not None:
            argv.append(remote)
        argv += (["-sn", scenario] if scenario in ("uac", "uas") else ["-sf", SIPP_DIR / scenario])
        argv += ["-i", LOCALHOST, "-p", str(self.local_port), "-mp", str(free_port("udp")),
                 "-cp", str(free_port("udp")), "-m", str(calls), "-nostdin",
                 "-timeout", f"{timeout:g}s", "-timeout_error",
                 "-trace_stat", "-stf", self.stat_file, "-fd", "1",
                 "-trace_err", "-error_file", self.error_file]
        if trace_messages:
            argv += ["-trace_msg", "-message_file", self.message_file]
        if transport == "tcp":
            argv += ["-t", "t1"]
        if rate is not None:
            argv += ["-r", f"{rate:g}"]
        if rate_period_ms is not None:
            argv += ["-rp", str(rate_period_ms)]
        if limit is not None:
            argv += ["-l", str(limit)]
        if inf is not None:
            argv += ["-inf", SIPP_DIR / inf]
        if service is not None:
            argv += ["-s", service]
        if pause_ms is not None:
            argv += ["-d", str(pause_ms)]
        argv += list(extra)
        self.argv = [str(a) for a in argv]
        self.process: PeerProcess | None = None

    def start(self) -> Sipp:
        """Run in the background (a UAS); ready once its SIP port is bound."""
        self.process = PeerProcess(f"sipp {self.name}", self.argv, lifetime=self.timeout + 5,
                                   log_path=self.workdir / f"{self.name}.out", cwd=self.workdir).start()
        wait_for_port(self.local_port, "udp", process=self.process)
        return self

    def run(self) -> SippResult:
        """Run to completion in the foreground (a UAC); bounded by ``-timeout`` and ``timeout``."""
        self.start()
        return self.result(self.timeout + 8)

    def result(self, wait: float) -> SippResult:
        """Wait up to ``wait`` s for sipp to end by itself (then stop it) and read its statistics."""
        assert self.process is not None
        try:
            rc = self.process.wait(wait)
        except PeerError:
            rc = self.process.stop() or -1
        log = self.process.log()
        with contextlib.suppress(OSError):
            log += self.error_file.read_text("utf-8", "replace")
        return SippResult(rc, read_sipp_stats(self.stat_file), log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def messages(self) -> str:
        try:
            return self.message_file.read_text("utf-8", "replace")
        except OSError:
            return ""
