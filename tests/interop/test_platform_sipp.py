"""sipp against the embedded platform: digest REGISTER, calls to busy and echo, and a load run.

Every sipp run is bounded by its own ``-timeout`` (with ``-timeout_error``) and by the
subprocess timeout, and killed by PID if it outlives them. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from conftest import require
from sipcore.auth import DigestServer
from voice_sdk.server import Platform, PlatformConfig, ephemeral_credentials

pytestmark = pytest.mark.interop
HERE = Path(__file__).parent / "sipp_platform"
LOAD_RATE = int(os.environ.get("PLATFORM_SIPP_RATE", "50"))
LOAD_SECONDS = int(os.environ.get("PLATFORM_SIPP_SECONDS", "20"))


def _users(platform: Platform, path: Path, names: list[str]) -> Path:
    lines = ["SEQUENTIAL"]
    for user in names:
        creds = ephemeral_credentials(platform.config.sip_secret, user, now=time.time(), ttl=600)
        lines.append(f"{user};{platform.config.domain};"
                     f"[authentication username={creds.username} password={creds.password}]")
    path.write_text("\n".join(lines) + "\n")
    return path


async def _sipp(args: list[str], timeout: float) -> tuple[int, str]:
    # sipp digests ``sip:remote_ip:port`` unless told the Request-URI (-auth_uri); the platform
    # checks the digest-uri against the Request-URI (RFC 7616 §3.4.6)
    proc = await asyncio.create_subprocess_exec("sipp", *args, "-nostdin", "-timeout", f"{int(timeout)}s",
                                                "-timeout_error", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode("utf-8", "replace")


def _run(body, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        platform = Platform(PlatformConfig(noanswer_seconds=1.0, max_calls=400))
        # sipp answers only the first challenge and only MD5 (its createAuthHeader), so this
        # platform offers MD5 alone; the default is SHA-256 first, then MD5 (RFC 8760 §2.4)
        platform.digest = DigestServer(platform.config.domain, algorithms=("MD5",))
        await platform.start()
        try:
            await asyncio.wait_for(body(platform), timeout)
        finally:
            await platform.close()

    asyncio.run(main())


def _target(platform: Platform) -> str:
    return platform.urls["udp"].removeprefix("sip:")


def test_sipp_registers_with_digest_and_calls_busy_and_echo(tmp_path: Path) -> None:
    require("sipp")

    async def body(platform: Platform) -> None:
        users = _users(platform, tmp_path / "users.csv", ["alice", "bob"])
        rc, out = await _sipp([_target(platform), "-sf", str(HERE / "register.xml"), "-inf", str(users),
                               "-auth_uri", f"{platform.config.domain}",
                               "-i", "127.0.0.1", "-p", "0", "-m", "2"], 20)
        assert rc == 0, out[-2000:]
        assert set(platform.bindings) == {"alice", "bob"}
        rc, out = await _sipp([_target(platform), "-sf", str(HERE / "call.xml"), "-inf", str(users), "-s", "busy",
                               "-auth_uri", f"busy@{platform.config.domain}", "-i", "127.0.0.1", "-p", "0", "-m", "4", "-r", "10"], 20)
        assert rc == 0, out[-2000:]
        rc, out = await _sipp([_target(platform), "-sf", str(HERE / "call.xml"), "-inf", str(users), "-s", "echo",
                               "-auth_uri", f"echo@{platform.config.domain}", "-i", "127.0.0.1", "-p", "0", "-mp", "0", "-m", "4", "-r", "10", "-d", "500"], 20)
        assert rc == 0, out[-2000:]
        await asyncio.sleep(0.2)
        assert not platform.calls, "every echo call was torn down by BYE"

    _run(body)


def test_sipp_load_on_busy_and_echo_without_failures(tmp_path: Path) -> None:
    require("sipp")

    async def body(platform: Platform) -> None:
        users = _users(platform, tmp_path / "users.csv", [f"load{i}" for i in range(50)])
        total = LOAD_RATE * LOAD_SECONDS
        rc, out = await _sipp([_target(platform), "-sf", str(HERE / "call.xml"), "-inf", str(users), "-s", "busy",
                               "-auth_uri", f"busy@{platform.config.domain}", "-i", "127.0.0.1", "-p", "0", "-m", str(total), "-r", str(LOAD_RATE),
                               "-l", str(LOAD_RATE * 4)], LOAD_SECONDS + 40)
        assert rc == 0, out[-3000:]
        echo_total = max(10, total // 10)
        rc, out = await _sipp([_target(platform), "-sf", str(HERE / "call.xml"), "-inf", str(users), "-s", "echo",
                               "-auth_uri", f"echo@{platform.config.domain}", "-i", "127.0.0.1", "-p", "0", "-mp", "0", "-m", str(echo_total),
                               "-r", str(max(1, LOAD_RATE // 5)), "-d", "1000"], LOAD_SECONDS + 40)
        assert rc == 0, out[-3000:]

    _run(body, timeout=LOAD_SECONDS * 2 + 120)
