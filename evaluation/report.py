"""Atomic writers of evaluation results: CSV tables and JSON reports (temp file + os.replace, video_io.atomic_path)."""
import csv
import json

from video_io import atomic_path


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically (temp file + os.replace)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def write_csv(path, rows):
    """Write a list of dicts as CSV (columns: union of keys, in first-seen order), atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
