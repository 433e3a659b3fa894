"""Injected GPU faults as agents see them: a fault file the lab rewrites, re-read while they run."""
import json
import os
import time
import uuid

import numpy as np
import pytest

from agents.faults import FAULTS_ENV, RECHECK, GpuLost
from agents.gpu import Gpus
from cluster.node import NodeParams


def write(path, faults):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(faults))
    tmp.rename(path)


def test_a_running_agent_sees_a_gpu_corrupt_then_lost_then_healthy(tmp_path, monkeypatch):
    path = tmp_path / "node.json"
    monkeypatch.setenv(FAULTS_ENV, str(path))           # no file yet: healthy
    gpus = Gpus(f"emu-test-{uuid.uuid4().hex[:8]}", 4096, np.dtype(np.uint8), NodeParams(gpus=2).scaled(1.0))
    try:
        host = np.empty(4096, np.uint8)
        gpus.mem[1][:] = 7
        gpus.d2h(1, slice(0, 4096), host)
        assert (host == 7).all()
        write(path, {"gpu": {"1": "corrupt"}})
        time.sleep(RECHECK)
        gpus.d2h(1, slice(0, 4096), host)
        assert 0 < np.count_nonzero(host != 7) < 4096 and (gpus.mem[1] == 7).all()   # reads differ, memory holds
        gpus.d2h(0, slice(0, 4096), host)                                            # the other GPU is fine
        write(path, {"gpu": {"1": "lost"}})
        time.sleep(RECHECK)
        with pytest.raises(GpuLost, match="Xid 79"):
            gpus.check()
        with pytest.raises(OSError):                    # agents end in one line on an OSError
            gpus.h2d(1, slice(0, 4096), host)
        os.unlink(path)                                 # the lab cleared its faults
        time.sleep(RECHECK)
        gpus.check()
    finally:
        gpus.close()
