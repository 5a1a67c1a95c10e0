"""digits: the library behind the MNIST DVC pipeline.

Pure functions only: no argv, no hard-coded paths, no process-wide side effects at import.
The thin modules in `stages/` wire these functions to the paths that dvc.yaml names.
"""
