"""digits: the library behind the MNIST DVC pipeline.

Functions of data, not of the command line: the thin modules in `stages/` parse the paths
that dvc.yaml names and call this library, which reads and writes only the paths it is given
and has no process-wide side effects at import. The data layout (a split's file and array
names) lives in `digits.dataset`; the recogniser application that uses the trained model lives
in the `app` subpackage and is never imported from here.
"""
