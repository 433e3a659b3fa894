"""Runtime controllers: they change a running lab only through the Lab's backend calls, which
record every change in the kept plan and the lab's event log."""
