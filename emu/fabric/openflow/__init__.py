"""The OpenFlow backend: Open vSwitch bridges and an os-ken controller (emu.fabric.openflow.backend)."""
