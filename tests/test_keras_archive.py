"""digits.keras_archive: a .keras zip rewritten without dates or memory addresses (no TensorFlow:
the zips here are made by hand; tests/test_model.py checks a real saved model)."""

from __future__ import annotations

import io
import json
import zipfile

from digits.keras_archive import normalize_keras_archive


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)  # dated now
    return out.getvalue()


def test_normalize_keras_archive_renumbers_shared_objects_consistently() -> None:
    policy = {"class_name": "DTypePolicy", "shared_object_id": 140596010652176}
    other = {"class_name": "Other", "shared_object_id": 139000000000000}
    config = {"a": policy, "b": [other, dict(policy)], "c": dict(other)}
    raw = _zip_bytes(
        {
            "metadata.json": b'{"keras_version": "3", "date_saved": "2025-01-01@00:00:00"}',
            "config.json": json.dumps(config).encode(),
        }
    )

    with zipfile.ZipFile(io.BytesIO(normalize_keras_archive(raw))) as archive:
        renumbered = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json"))

    assert renumbered == {
        "a": {"class_name": "DTypePolicy", "shared_object_id": 1},
        "b": [{"class_name": "Other", "shared_object_id": 2}, {**policy, "shared_object_id": 1}],
        "c": {"class_name": "Other", "shared_object_id": 2},
    }
    assert metadata == {"keras_version": "3"}


def test_entries_are_dated_1980_and_sorted() -> None:
    raw = _zip_bytes({"model.weights.h5": b"w", "config.json": b"{}", "metadata.json": b"{}"})
    with zipfile.ZipFile(io.BytesIO(normalize_keras_archive(raw))) as archive:
        entries = archive.infolist()
    assert [entry.filename for entry in entries] == [
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}
