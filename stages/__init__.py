"""Thin DVC stage modules: `python -m stages.<name> <paths from dvc.yaml>`."""
