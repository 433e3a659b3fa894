"""Scenario runners and canned experiments."""
