from __future__ import annotations

from sipcore.ladder import LadderEntry, label_for, render_ladder


def test_labels_from_start_lines() -> None:
    assert label_for("INVITE sip:bob@x SIP/2.0") == "INVITE"
    assert label_for("SIP/2.0 200 OK", "INVITE") == "200 OK (INVITE)"
    assert label_for("SIP/2.0 486 Busy Here") == "486 Busy Here"


def test_ladder_arrows_point_the_right_way() -> None:
    a, b = "127.0.0.1:5060", "127.0.0.1:5070"
    out = render_ladder([
        LadderEntry(time=10.0, src=a, dst=b, label="INVITE"),
        LadderEntry(time=10.25, src=b, dst=a, label="200 OK (INVITE)"),
        LadderEntry(time=10.3, src=a, dst=a, label="note"),
    ])
    lines = out.splitlines()
    assert lines[0].split() == [a, b]
    assert lines[1].startswith("    0.000 |-- INVITE") and lines[1].rstrip().endswith(">|")
    assert lines[2].startswith("    0.250 |<-- 200 OK (INVITE)") and lines[2].rstrip().endswith("|")
    assert "| note" in lines[3]
    assert render_ladder([]) == "(no messages)"


def test_three_parties_and_long_labels_fit() -> None:
    out = render_ladder([
        LadderEntry(time=0, src="a", dst="c", label="X" * 40),
        LadderEntry(time=1, src="c", dst="b", label="y"),
    ])
    first, second = out.splitlines()[1:3]
    assert "X" * 40 in first and "-->|" in first  # a -> c: c is the second column
    assert "|-- y" in second and second.rstrip().endswith(">|")  # c -> b: b is the third column
