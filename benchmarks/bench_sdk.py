"""The SDK as a user feels it: setup times, memory of a process with one call, CPU of one call.

* register: token → credentials → REGISTER (WebSocket) → 200, against the embedded platform;
* connect: ``connect("echo")`` → media flowing (ICE + DTLS-SRTP), the 2Chat "accepted" moment;
* RSS of a process that holds one registered Device and one active Opus call (target ≤ 80 MB),
  sampled over the call to show growth (target: flat); the platform runs in another process so
  its memory is not counted;
* CPU of that process during the call, as % of one core (target ≤ 5 %).

``BENCH_CALL_SECONDS`` sets the call length (default 60; the README quotes a 600 s run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

PLATFORM = r"""
import asyncio, json, sys
from voice_sdk.server import Platform, PlatformConfig
async def main():
    p = Platform(PlatformConfig())
    await p.start()
    print(json.dumps(p.urls), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await p.close()
asyncio.run(main())
"""

CLIENT = r"""
import asyncio, json, resource, sys, time
import aiohttp
from voice_sdk import Device, DeviceOptions
from voice_sdk.audio import SpeechLikeSource, NullSink

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

async def main():
    urls = json.loads(sys.argv[1]); seconds = float(sys.argv[2]); rounds = int(sys.argv[3])
    async with aiohttp.ClientSession() as http, http.post(urls["token"], headers={"X-User-API-Key": "demo-api-key"},
                                                         json={"user_uuid": "bench"}) as r:
        token = (await r.json())["access_token"]
    out = {"register_ms": [], "connect_ms": []}
    for _ in range(rounds):
        d = Device(token, options=DeviceOptions(credentials_url=urls["credentials"]))
        t0 = time.perf_counter(); await d.register(); out["register_ms"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter(); call = await d.connect("echo"); await call.wait_accepted(15)
        out["connect_ms"].append((time.perf_counter() - t0) * 1000)
        await call.disconnect(); await d.destroy()
    d = Device(token, options=DeviceOptions(credentials_url=urls["credentials"]))
    await d.register()
    call = await d.connect("echo")
    call.set_input(SpeechLikeSource(sample_rate=48000)); call.set_output(NullSink(48000))
    await call.wait_accepted(15)
    await asyncio.sleep(2)
    samples = []
    c0, t0 = time.process_time(), time.monotonic()
    step = max(1.0, seconds / 10)
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(step)
        samples.append((round(time.monotonic() - t0, 1), round(rss_mb(), 1)))
    cpu = (time.process_time() - c0) / (time.monotonic() - t0) * 100
    out.update(codec=call.quality().selected_codec, rss=samples, cpu_percent=cpu,
               max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    await call.disconnect(); await d.destroy()
    print(json.dumps(out), flush=True)

asyncio.run(main())
"""


def main() -> None:
    seconds = float(os.environ.get("BENCH_CALL_SECONDS", "60"))
    rounds = 5
    plat = subprocess.Popen([sys.executable, "-c", PLATFORM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert plat.stdout is not None
        urls = plat.stdout.readline()
        res = subprocess.run([sys.executable, "-c", CLIENT, urls, str(seconds), str(rounds)], capture_output=True,
                             text=True, timeout=seconds + 120, check=False)
        if res.returncode != 0:
            print("client failed:", res.stderr[-2000:])
            return
        out = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        if plat.stdin is not None:
            plat.stdin.close()
        try:
            plat.wait(10)
        except subprocess.TimeoutExpired:
            plat.kill()
    print(f"register (token -> credentials -> REGISTER over WS), median of {rounds}: "
          f"{statistics.median(out['register_ms']):.0f} ms")
    print(f"connect('echo') -> media flowing (ICE + DTLS-SRTP), median of {rounds}: "
          f"{statistics.median(out['connect_ms']):.0f} ms")
    rss = out["rss"]
    print(f"one registered Device + one {out['codec']} call, {seconds:.0f} s: RSS {rss[0][1]:.1f} MB at "
          f"{rss[0][0]:.0f} s -> {rss[-1][1]:.1f} MB at {rss[-1][0]:.0f} s (peak {out['max_rss_mb']:.1f} MB; "
          "target <= 80 MB, flat)")
    print("  samples (s, MB): " + ", ".join(f"{t:.0f}:{m:.1f}" for t, m in rss))
    print(f"CPU of that process during the call: {out['cpu_percent']:.1f} % of one core (target <= 5 %)")



if __name__ == "__main__":
    main()
