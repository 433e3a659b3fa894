"""The plan stage: Topology -> LabPlan (pure, JSON), kept with the lab and read downstream."""
from emu.plan.make import HOST_QUEUE_BYTES, make_plan
from emu.plan.model import LabPlan, NodePlan, PortPlan

__all__ = ["make_plan", "LabPlan", "NodePlan", "PortPlan", "HOST_QUEUE_BYTES"]
