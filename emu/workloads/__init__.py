"""The workload vocabulary: every type a scenario may name, each registered once (emu.workloads.base)
with its keys, its checks, its lab runner and its flow-model builder. A new type is a new module
here, imported below; scenario files, `emu run` and `emu model run` know it from then on."""
from emu.workloads.base import TYPES, WorkloadType, register
from emu.workloads import aicb, bulk, coe, collectives, command, iperf3, storage, train  # noqa: F401  (each registers its types)

__all__ = ["TYPES", "WorkloadType", "register"]
