"""Stable bytes for a saved .keras file, so that the same weights give the same file.

Keras writes the save date into metadata.json, the current time into every zip entry, and a
memory address (`shared_object_id`) into config.json. Rewriting the zip without them changes
nothing Keras reads: the file still loads with `keras.saving.load_model`.
"""

from __future__ import annotations

import io
import json
import zipfile

# A fixed zip timestamp (the earliest a zip file can hold) so the same weights give the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber_shared_objects(config: object, numbers: dict[int, int]) -> None:
    """Replace each `shared_object_id` (Python's id() of the object: a memory address that
    changes from process to process) by 1, 2, ... in order of first appearance, in place."""
    if isinstance(config, dict):
        if "shared_object_id" in config:
            key = config["shared_object_id"]
            config["shared_object_id"] = numbers.setdefault(key, len(numbers) + 1)
        for value in config.values():
            _renumber_shared_objects(value, numbers)
    elif isinstance(config, list):
        for value in config:
            _renumber_shared_objects(value, numbers)


def normalize_keras_archive(data: bytes) -> bytes:
    """Rewrite a .keras zip without its save date or memory addresses, with fixed entry times
    and order."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in sorted(source.infolist(), key=lambda info: info.filename):
            content = source.read(entry)
            if entry.filename == "metadata.json":
                metadata = json.loads(content)
                metadata.pop("date_saved", None)
                content = json.dumps(metadata, sort_keys=True).encode()
            elif entry.filename == "config.json":
                config = json.loads(content)
                _renumber_shared_objects(config, {})
                content = json.dumps(config).encode()
            info = zipfile.ZipInfo(entry.filename, date_time=_ZIP_EPOCH)
            info.compress_type = entry.compress_type
            info.external_attr = 0o644 << 16
            target.writestr(info, content)
    return out.getvalue()
