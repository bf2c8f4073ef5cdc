"""Benchmarks: scripts run by `make bench`, not tests. Each prints its figures next to a baseline measured in
the same run, because the machines they run on are shared and noisy."""
