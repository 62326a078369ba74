"""Sensor jobs (the original's ``enrgdaq.daq.jobs.sensor`` package)."""
