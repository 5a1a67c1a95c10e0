"""Helper modules for the tests, not test modules: test modules import from here, never from
each other.

    pipeline       the real params with a tiny network, training, the stages' argument lists
    synthetic      synthetic MNIST: IDX bytes, uint8 digits, float splits
    dvc_project    a copy of the project reproduced on synthetic MNIST, for the DVC tests
    import_graph   the project modules a module imports, read from the source
    chromium       headless Chromium for the browser tests
    ssh_server     a real OpenSSH server on 127.0.0.1 for the SSH remote tests
    threaded_server  digits-serve answering in a thread of the test process
"""
