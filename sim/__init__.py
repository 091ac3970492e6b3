"""Simulation: physics of the pump and its patient line, scenarios, the virtual pump."""
