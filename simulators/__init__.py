"""Simulators of the devices radbill talks to (NAS), shared by tests, demo and benchmarks."""
