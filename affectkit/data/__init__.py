"""Scans and their labels: meshes and mesh files, the canonical face frame, FACS emotions and
action units, generated and on-disk datasets, subject splits."""
