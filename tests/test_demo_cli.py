"""`voice-sdk demo` as a user runs it: a subprocess, its summary and the files it writes."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "voice_sdk.cli", "demo", "--seconds", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "demo OK" in text
    assert "ivr heard '1234#', echoed back '1234#'" in text
    assert "REGISTER" in text and "200 OK (INVITE)" in text  # the ladder
    mos = float(text.split("MOS estimate")[1].split()[0])
    assert mos > 4.0
    for name in ("demo.pcap", "trace.jsonl", "dtls-keylog.txt", "received.wav"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "dtls-keylog.txt").read_text().startswith("CLIENT_RANDOM ")
    with wave.open(str(out / "received.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert w.getnframes() > w.getframerate() * 2
    assert np.sqrt(np.mean(pcm.astype(float) ** 2)) > 300  # the echo is audible, not silence


def test_demo_failure_is_one_line_with_nonzero_exit(tmp_path: Path) -> None:
    # an output folder that cannot be created fails early with a clear message
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "voice_sdk.cli", "demo", "--out", str(blocker / "sub")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.strip(), proc.stderr
