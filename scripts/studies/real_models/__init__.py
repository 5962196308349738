"""The real-model study (scripts/real_models.py): its report."""
