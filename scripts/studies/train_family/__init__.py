"""The family study (scripts/train_family.py): corpus, training and evaluation, analysis, report."""
