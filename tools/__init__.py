"""The project's developer tools (benchmarks, the sweep, checks), run from the project root as
`python -m tools.<name>` (see the Makefile). They import the library (digits) and each other,
never the tests."""
