"""A controller that acts every `period` in a thread of its own, until stopped."""
import threading


class Periodic:
    name = "emu-controller"

    def __init__(self, period: float):
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self):
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.step()

    def start(self):
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _join(self) -> None:
        """End the thread (a step under way finishes first)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
