# digits-serve in a container: the recogniser's web page and API on port 8000, running the
# model's ONNX export with ONNX Runtime. No TensorFlow, no DVC, no training code's dependencies:
# only requirements-serve.lock (`make lock`), installed with its hashes.
#
# The model is mounted at run time, read-only, at /model: a folder with model.keras, model.onnx
# and model.json, as `dvc artifacts get <repo> digits-recogniser` or `make app-model`
# (data/app-model/recogniser/) leave it. Mounted, not copied in at build time, because the model
# lives in the DVC remote, not in git: the image builds from a clone alone (no DVC credentials
# in the build), one image serves every model version, and a new model is a new mount, not a
# new image. (The .keras file is there for the name and card the app reports; without
# model.onnx beside it the server stops with an error: the image has no Keras.)
#
#   docker build -t digits-serve .
#   docker run --rm -p 8000:8000 -v "$PWD/data/app-model/recogniser:/model:ro" digits-serve
#
# Behind a load balancer, name the hosts it answers to: -e DIGITS_ALLOWED_HOSTS=digits.example.org
# (by default only localhost and 127.0.0.1; docs/app.md, "Container image").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/digits
COPY requirements-serve.lock ./
RUN /opt/digits/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
    --only-binary=:all: -r requirements-serve.lock
COPY pyproject.toml README.md LICENSE ./
COPY digits ./digits
COPY stages ./stages
RUN /opt/digits/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
    --no-build-isolation .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin digits
COPY --from=build /opt/digits /opt/digits
ENV PATH=/opt/digits/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER digits
WORKDIR /tmp
EXPOSE 8000
VOLUME ["/model"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["digits-serve"]
CMD ["--model", "/model", "--host", "0.0.0.0", "--port", "8000"]
