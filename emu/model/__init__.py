"""A flow-level model of a lab: the same topology, routes and VL weights as the emulator, with
flows as fluids shared max-min fairly instead of packets (no root, no namespaces).

    maxmin.py     max-min fair rates (progressive filling, vectorised), and HTB's per-VL shares
    paths.py      the links a flow crosses, traced through the LabPlan's forwarding tables
    workloads.py  a scenario's workloads as rounds of flows (collectives, bulk, storage)
    simulate.py   the event-driven run: rates, ends, counters per port and VL over time
    run.py        `emu model run`: a run directory and summary like `emu run`'s
"""
