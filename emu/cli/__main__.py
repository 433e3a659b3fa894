"""python -m emu.cli: the `emu` command."""
from emu.cli import main

main()
