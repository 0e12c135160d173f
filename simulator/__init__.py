"""Simulator: trace files, scenario generator, sensor model and replay through the firmware."""
