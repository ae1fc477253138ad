"""baresip as a real media peer for the interop tests: configuration templates and a process/control helper.

See :mod:`baresip.peer`.
"""
