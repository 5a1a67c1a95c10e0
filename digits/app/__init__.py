"""The recogniser: an application that uses the pipeline's trained model.

`digits-predict` (cli.py) reads digits from image files; `digits-serve` (cli.py, server.py, web/)
serves a drawing page and its JSON API. images.py brings pictures to MNIST's conventions and
predict.py calls the model. The pipeline library (digits/*.py, stages/) never imports this
package.
"""
