"""read_json / JSONDatasource: JSON Lines (also compressed), JSON arrays, options,
long records and bad input; checked against pandas.read_json on the same files."""
from __future__ import annotations

import bz2
import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
import pytest

from ember.data._internal.datasource.json_datasource import JSONDatasource


def read(src, parallelism: int = 4) -> pa.Table:
    return pa.concat_tables([t for task in src.get_read_tasks(parallelism) for t in task()])


def records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"user": f"u{seed}_{i}", "clicks": int(rng.integers(0, 100)),
             "ratio": round(float(rng.random()), 4), "tags": ["a", "b"][: i % 3]}
            for i in range(n)]


def write_jsonl(path, rows, opener=open):
    with opener(path, "wt") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_jsonl_directory_matches_pandas(tmp_path):
    for i in range(3):
        write_jsonl(tmp_path / f"{i}.jsonl", records(20, seed=i))
    out = read(JSONDatasource(str(tmp_path)), 2)
    expected = pd.concat([pd.read_json(tmp_path / f"{i}.jsonl", lines=True) for i in range(3)],
                         ignore_index=True)
    got = out.to_pandas()
    pd.testing.assert_frame_equal(got.drop(columns=["tags"]), expected.drop(columns=["tags"]))
    assert [list(t) for t in got["tags"]] == [list(t) for t in expected["tags"]]
    assert out.schema.field("tags").type == pa.list_(pa.string())


def test_compressed_and_default_extensions(tmp_path):
    write_jsonl(tmp_path / "a.json.gz", records(5, 1), gzip.open)
    write_jsonl(tmp_path / "b.jsonl.bz2", records(5, 2), bz2.open)
    write_jsonl(tmp_path / "c.json", records(5, 3))
    (tmp_path / "notes.txt").write_text("not json")  # skipped: not a JSON extension
    out = read(JSONDatasource(str(tmp_path)))
    assert out["user"].to_pylist() == [r["user"] for s in (1, 2, 3) for r in records(5, s)]


def test_json_array_file(tmp_path):
    rows = records(4)
    (tmp_path / "arr.json").write_text(json.dumps(rows, indent=2))
    out = read(JSONDatasource(str(tmp_path / "arr.json")))
    assert out.to_pylist() == rows


def test_explicit_schema_via_parse_options(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"id": 1, "v": 2}, {"id": 2, "v": 3}])
    schema = pa.schema([("id", pa.int32()), ("v", pa.float32())])
    src = JSONDatasource(str(tmp_path), arrow_json_args={
        "parse_options": pajson.ParseOptions(explicit_schema=schema)})
    assert read(src).schema == schema
    with pytest.raises(TypeError, match="unexpected arguments.*lines"):
        JSONDatasource(str(tmp_path), arrow_json_args={"lines": True})


def test_record_longer_than_block_size(tmp_path):
    rows = [{"id": i, "blob": "x" * 5000} for i in range(4)]
    write_jsonl(tmp_path / "long.jsonl", rows)
    src = JSONDatasource(str(tmp_path), arrow_json_args={
        "read_options": pajson.ReadOptions(block_size=1024)})
    assert read(src).to_pylist() == rows


def test_empty_file_is_no_rows(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    write_jsonl(tmp_path / "one.jsonl", [{"a": 1}])
    assert read(JSONDatasource(str(tmp_path)), 1).to_pylist() == [{"a": 1}]


def test_malformed_json_names_file(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl.*as JSON"):
        read(JSONDatasource(str(tmp_path)))
    (tmp_path / "bad.jsonl").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match=r"bad\.jsonl.*objects"):
        read(JSONDatasource(str(tmp_path)))


def test_missing_path_and_extension_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        JSONDatasource(str(tmp_path / "absent.jsonl"))
    (tmp_path / "data.ndjson").write_text('{"a": 1}\n')
    with pytest.raises(ValueError, match=r"file extensions.*data\.ndjson"):
        JSONDatasource(str(tmp_path))
    assert read(JSONDatasource(str(tmp_path), file_extensions=["ndjson"])).num_rows == 1
