"""SIP under load from sipp: calls per second a sipcore UAS sustains, REGISTERs per second a sipcore
registrar sustains, and sipp's own UAS as the ceiling of the harness.

* UAS: :class:`~sipcore.aiostack.AioSipEndpoint` + :class:`~sipcore.aioua.UserAgent` on 127.0.0.1
  answering every INVITE at once with an SDP answer and accepting the BYE, in this process's
  event loop. sipp's built-in ``uac`` scenario (INVITE, 200, ACK, 100 ms pause, BYE, 200) runs
  in its own process at a rising rate, :data:`STEP_SECONDS` per step; a fresh UAS per step.
* Registrar: the same endpoint with a :class:`~sipcore.auth.DigestServer` (MD5, qop=auth) and an
  in-memory binding table; sipp sends REGISTER, answers the 401 with digest credentials from an
  injection file (one user per line), expects 200. One registration = two transactions.
* Reference: ``sipp -sn uas`` (C) at the top rate, to show the harness is not the bottleneck.

A step passes when sipp reports no failed call, no retransmission (a retransmission means a
response took longer than T1 = 500 ms) and an achieved rate within 10 % of the target (sipp's
rate counts the ramp-up and the last calls' tail). The ramp
stops at the first step that does not pass; "sustained" is the last rate that passed. sipp runs
on one core and the UAS on the other, as on a 2-core CI machine. CPU ms per call is this
process's CPU time (UAS plus a negligible driver) divided by the calls of the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sipcore.aiostack import AioSipEndpoint
from sipcore.aioua import IncomingInvite, UserAgent
from sipcore.auth import DigestServer
from sipcore.errors import SipParseError
from sipcore.message import SipRequest, SipResponse, make_response, random_tag
from sipcore.stack import RequestReceived
from sipcore.uri import SipUri

STEP_SECONDS = 3
CALL_RATES = (100, 200, 300, 400, 500, 600, 800, 1000)
REGISTER_RATES = (100, 200, 300, 400, 600, 800, 1000, 1200)
REFERENCE_RATE = 1000
REALM = "bench.local"
PASSWORD = "secret"
USERS = 500
ANSWER = (b"v=0\r\no=sipcore 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="REGISTER with digest">
  <send retrans="500" start_rtd="1">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@bench.local>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@bench.local>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true" />
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@bench.local>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@bench.local>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      [field1]
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="1" />
</scenario>
"""


@dataclass(frozen=True, slots=True)
class Step:
    target: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    rate: float
    response_ms: float
    cpu_ms_per_call: float
    returncode: int

    @property
    def passed(self) -> bool:
        return (self.returncode == 0 and self.failed == 0 and self.retransmissions == 0
                and self.successful == self.calls and self.rate >= 0.9 * self.target)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seconds(text: str) -> float:
    parts = text.strip().split(":")
    try:
        return int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2]) + (int(parts[3]) / 1e6 if len(parts) > 3 else 0)
    except (IndexError, ValueError):
        return 0.0


def _last_stats(path: Path) -> dict[str, str]:
    try:
        rows = [r for r in csv.reader(path.read_text("utf-8", "replace").splitlines(), delimiter=";") if r]
    except OSError:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


async def _run_sipp(argv: list[str], workdir: Path, *, rate: int, calls: int, limit: float) -> tuple[int, dict[str, str]]:
    """One sipp run, bounded by its own -timeout and by ``timeout``; killed by its pid if still running."""
    stats = workdir / f"stats_{rate}_{time.monotonic_ns()}.csv"
    full = ["timeout", "-k", "2", f"{limit + 5:g}", *argv, "-i", "127.0.0.1", "-p", str(_free_udp_port()),
            "-mp", str(_free_udp_port()), "-cp", str(_free_udp_port()), "-m", str(calls), "-r", str(rate),
            "-l", str(max(200, rate * 2)), "-nostdin", "-timeout", f"{limit:g}s", "-timeout_error",
            "-trace_stat", "-stf", str(stats), "-fd", "1"]
    proc = await asyncio.create_subprocess_exec(*full, cwd=workdir, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                start_new_session=True)
    try:
        rc = await asyncio.wait_for(proc.wait(), limit + 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return rc, _last_stats(stats)


def _step(target: int, calls: int, rc: int, stats: dict[str, str], cpu: float) -> Step:
    def num(name: str) -> float:
        try:
            return float(stats.get(name) or 0)
        except ValueError:
            return 0.0

    return Step(target=target, calls=calls, successful=int(num("SuccessfulCall(C)")), failed=int(num("FailedCall(C)")),
                retransmissions=int(num("Retransmissions(C)")), rate=num("CallRate(C)"),
                response_ms=_seconds(stats.get("ResponseTime1(C)", "")) * 1000,
                cpu_ms_per_call=cpu * 1000 / max(1, calls), returncode=rc)


# -- the servers ------------------------------------------------------------------------------------
class _Uas:
    def __init__(self) -> None:
        self.endpoint = AioSipEndpoint()
        self.endpoint.trace_limit = 0
        self.ua: UserAgent | None = None
        self.port = 0

    async def start(self) -> _Uas:
        _, self.port = await self.endpoint.listen("udp", "127.0.0.1", 0)
        self.ua = UserAgent(self.endpoint, aor="sip:uas@127.0.0.1", outbound=None)
        self.ua.on_invite = self._on_invite
        return self

    @staticmethod
    def _on_invite(inc: IncomingInvite) -> None:
        inc.answer(ANSWER)

    async def close(self) -> None:
        if self.ua is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ua.close(), 3)
        await self.endpoint.close()


class _Registrar:
    """A digest-protected registrar: 401 with an MD5 challenge, then 200 with the bindings."""

    def __init__(self) -> None:
        self.endpoint = AioSipEndpoint()
        self.endpoint.trace_limit = 0
        self.endpoint.on_request = self._on_request
        self.digest = DigestServer(REALM, algorithms=("MD5",))
        self.bindings: dict[str, dict[str, float]] = {}
        self.port = 0

    async def start(self) -> _Registrar:
        _, self.port = await self.endpoint.listen("udp", "127.0.0.1", 0)
        return self

    def _on_request(self, ev: RequestReceived) -> None:
        req, tx = ev.request, ev.transaction
        if tx is None:
            return
        self.endpoint.respond(tx, self._answer(req))

    def _answer(self, req: SipRequest) -> SipResponse:
        if req.method != "REGISTER":
            return make_response(req, 405, to_tag=random_tag(), headers=[("Allow", "REGISTER")])
        now = self.endpoint.now()
        result = self.digest.verify(req, now, lambda _user: PASSWORD)
        if not result.ok:
            return make_response(req, 401, to_tag=random_tag(), headers=self.digest.challenge(now, result.stale))
        try:
            uri = req.to.uri
            aor = uri.aor if isinstance(uri, SipUri) else str(uri)
            contacts, default = req.contacts, req.expires
        except SipParseError as exc:
            return make_response(req, 400, str(exc)[:60], to_tag=random_tag())
        table = self.bindings.setdefault(aor, {})
        for c in contacts:
            expires = c.expires if c.expires is not None else (default if default is not None else 3600)
            if expires > 0:
                table[str(c.uri)] = now + min(expires, 3600)
            else:
                table.pop(str(c.uri), None)
        return make_response(req, 200, to_tag=random_tag(),
                             headers=[("Contact", f"<{uri}>;expires={int(t - now)}") for uri, t in table.items()])

    async def close(self) -> None:
        await self.endpoint.close()


# -- the ramps --------------------------------------------------------------------------------------
async def _calls_step(rate: int, workdir: Path, *, reference: bool = False) -> Step:
    calls = rate * STEP_SECONDS
    if reference:
        port = _free_udp_port()
        ref = await asyncio.create_subprocess_exec(
            "timeout", "-k", "2", f"{STEP_SECONDS + 20}", "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port),
            "-mp", str(_free_udp_port()), "-cp", str(_free_udp_port()), "-nostdin",
            "-timeout", f"{STEP_SECONDS + 15}s", cwd=workdir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            await asyncio.sleep(0.3)
            cpu0 = time.process_time()
            rc, stats = await _run_sipp(["sipp", f"127.0.0.1:{port}", "-sn", "uac", "-d", "100"], workdir,
                                        rate=rate, calls=calls, limit=STEP_SECONDS + 10)
            return _step(rate, calls, rc, stats, time.process_time() - cpu0)
        finally:
            if ref.returncode is None:
                ref.kill()
            await ref.wait()
    uas = await _Uas().start()
    try:
        cpu0 = time.process_time()
        rc, stats = await _run_sipp(["sipp", f"127.0.0.1:{uas.port}", "-sn", "uac", "-d", "100"], workdir,
                                    rate=rate, calls=calls, limit=STEP_SECONDS + 10)
        return _step(rate, calls, rc, stats, time.process_time() - cpu0)
    finally:
        await uas.close()


async def _register_step(rate: int, workdir: Path) -> Step:
    scenario = workdir / "register_digest.xml"
    users = workdir / "users.csv"
    if not scenario.exists():
        scenario.write_text(REGISTER_XML, encoding="ascii")
        users.write_text("SEQUENTIAL\n" + "".join(
            f"user{i};[authentication username=user{i} password={PASSWORD}]\n" for i in range(USERS)),
            encoding="ascii")
    registrar = await _Registrar().start()
    calls = rate * STEP_SECONDS
    try:
        cpu0 = time.process_time()
        rc, stats = await _run_sipp(["sipp", f"127.0.0.1:{registrar.port}", "-sf", str(scenario), "-inf", str(users)],
                                    workdir, rate=rate, calls=calls, limit=STEP_SECONDS + 10)
        return _step(rate, calls, rc, stats, time.process_time() - cpu0)
    finally:
        await registrar.close()


def _print_steps(title: str, unit: str, steps: list[Step]) -> None:
    one = unit.split("/")[0].rstrip("s")
    print(f"\n{title}")
    print(f"{'target ' + unit:>14} {'achieved':>9} {'ok':>6} {'failed':>6} {'retrans':>7} "
          f"{'resp ms':>8} {'CPU ms/' + one:>11}  verdict")
    for s in steps:
        print(f"{s.target:>14} {s.rate:>9.1f} {s.successful:>6} {s.failed:>6} {s.retransmissions:>7} "
              f"{s.response_ms:>8.1f} {s.cpu_ms_per_call:>11.2f}  {'ok' if s.passed else 'FAIL'}")
    good = [s.target for s in steps if s.passed]
    if not good:
        print(f"sustained: none of the rates passed ({steps[0].target} {unit} already failed)")
    elif steps[-1].passed:
        print(f"sustained: {good[-1]} {unit} (the highest step tried)")
    else:
        print(f"sustained: {good[-1]} {unit}; {steps[-1].target} {unit} failed")


async def _ramp(kind: str, rates: tuple[int, ...], workdir: Path) -> list[Step]:
    steps: list[Step] = []
    for rate in rates:
        step = await (_calls_step(rate, workdir) if kind == "calls" else _register_step(rate, workdir))
        steps.append(step)
        if not step.passed:
            break
        await asyncio.sleep(0.5)
    return steps


async def _bench(workdir: Path) -> None:
    calls = await _ramp("calls", CALL_RATES, workdir)
    _print_steps(f"sipcore UAS, sipp uac ({STEP_SECONDS} s per step, 100 ms calls; resp ms: INVITE to 200)",
                 "calls/s", calls)
    regs = await _ramp("register", REGISTER_RATES, workdir)
    _print_steps(f"sipcore registrar with digest, sipp REGISTER/401/REGISTER/200 ({STEP_SECONDS} s per step; "
                 "resp ms: first REGISTER to 200)", "regs/s", regs)
    ref = await _calls_step(REFERENCE_RATE, workdir, reference=True)
    _print_steps("reference: sipp's own UAS (C), same harness", "calls/s", [ref])
    best = max((s.target for s in calls if s.passed), default=0)
    if ref.passed and best:
        print(f"\nsipcore UAS sustains {best} calls/s; the harness carries at least {REFERENCE_RATE} "
              f"(ratio <= {best / REFERENCE_RATE:.2f})")


def main() -> None:
    if shutil.which("sipp") is None or shutil.which("timeout") is None:
        print("skipped: sipp is not installed (tests/interop/install.sh installs it as package sip-tester)")
        return
    with tempfile.TemporaryDirectory(prefix="bench_sip_uas_") as tmp:
        asyncio.run(_bench(Path(tmp)))


if __name__ == "__main__":
    main()
