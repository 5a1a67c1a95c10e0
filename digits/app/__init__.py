"""The recogniser: an application that reads digits with the project's trained models.

`digits-predict` (cli.py) reads digits from image files; `digits-serve` (cli.py, server.py, web/)
serves a drawing page and its JSON API. By default both load the app's model, a CNN built by
`make app-model` (app-model/dvc.yaml), and fall back to the pipeline's MLP, with a note, when it
is missing; artifacts.py says which file that is and what is known about it. images.py brings
pictures to MNIST's conventions and predict.py calls the model. server.py is the FastAPI app,
schema.py its request and response models, deadlines.py uvicorn's connection deadlines,
metrics.py its Prometheus metrics and logs.py what it logs (text or JSON lines).
samples.py makes pictures that are not MNIST (drawn, scanned, printed digits, scribbles) and
scoring.py scores a reader on them. The pipeline library (digits/*.py, stages/) never imports
this package.
"""
