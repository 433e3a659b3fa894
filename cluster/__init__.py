"""Pure knowledge that both wings share, with no I/O: node hardware parameters and dtypes,
chain tables and file layouts, double binary trees, collective algorithms and their classes.

`emu/` (the control plane) and `agents/` (programs inside nodes) both import from here and
never from each other (tests/unit/test_imports.py holds them to it).
"""
