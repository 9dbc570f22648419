"""Evaluation: reports, metrics and the figures written beside every run."""
