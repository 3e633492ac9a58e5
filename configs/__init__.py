"""Experiment configs: `base.py` holds the defaults, one file per dataset derives from it."""
