"""Traffic isolation: traffic class -> SL -> VL, and VL arbitration weights (paper section VI-A)."""
from emu.qos.policy import QosPolicy, DEFAULT_QOS

__all__ = ["QosPolicy", "DEFAULT_QOS"]
