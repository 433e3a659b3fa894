"""Measurements taken from the root namespace: TCP reachability meshes, kernel counters."""
