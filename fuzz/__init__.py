"""Fuzz harnesses: one module ``fuzz_<parser>.py`` per parser.

The rule every harness enforces (h11/wsproto style): for any input, a parser returns a
value or raises its package's ``RemoteProtocolError`` subtree. Anything else is a bug.
"""
