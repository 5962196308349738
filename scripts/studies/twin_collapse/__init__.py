"""The twin-collapse study (scripts/twin_collapse.py): catalogue, measurement, report."""
