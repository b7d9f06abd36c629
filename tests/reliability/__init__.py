"""Reliability fault suites (fast variants; the full ones are under stress/)."""
