"""formats.frame_records: change rows as plain Python dicts, converted column-wise, must equal what
the row-wise clean_record made of every row (the HTML pages and JSON are built from them)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from varreinterp.output.formats import clean_record
from varreinterp.output.formats import frame_records as records


def rowwise(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [clean_record(r) for r in frame.to_dict(orient="records")]


def test_every_kind_of_missing_value_becomes_none() -> None:
    frame = pd.DataFrame({
        "int": [1, 2, 3],
        "float": [1.5, np.nan, None],
        "text": ["x", None, np.nan],
        "nullable_int": pd.array([1, None, 3], dtype="Int64"),
        "arrow_text": pd.array(["p", None, "q"], dtype="string[pyarrow]"),
        "arrow_int": pd.array([1, None, 2], dtype="int64[pyarrow]"),
        "flag": [True, False, True],
        "nested": [[1], None, {"k": 1}],
        "when": pd.to_datetime(["2024-01-01", None, "2024-02-02"]),
        "mixed": [np.int64(3), "s", pd.NA],
    })
    got = records(frame)
    assert got[1] == {"int": 2, "float": None, "text": None, "nullable_int": None,
                      "arrow_text": None, "arrow_int": None, "flag": False, "nested": None,
                      "when": None, "mixed": "s"}
    assert got[0]["mixed"] == 3 and type(got[0]["mixed"]) is int
    assert type(got[0]["nullable_int"]) is int and type(got[0]["arrow_int"]) is int
    assert got == rowwise(frame)
    for a, b in zip(got, rowwise(frame), strict=True):
        assert [type(v) for v in a.values()] == [type(v) for v in b.values()]


def test_an_empty_frame_has_no_records() -> None:
    assert records(pd.DataFrame({"a": pd.Series([], dtype=object)})) == []


@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(-2**40, 2**40)),
                          st.one_of(st.none(), st.floats(allow_nan=True)),
                          st.one_of(st.none(), st.text(max_size=5)),
                          st.one_of(st.none(), st.dates(min_value=dt.date(2000, 1, 1)))),
                max_size=30))
def test_columnwise_equals_rowwise(rows: list[tuple[object, ...]]) -> None:
    frame = pd.DataFrame(rows, columns=["i", "f", "s", "d"])
    frame["i2"] = pd.array([r[0] for r in rows], dtype="Int64")
    got, want = records(frame), rowwise(frame)
    assert got == want
    assert not any(isinstance(v, float) and v != v for r in got for v in r.values())
    assert len(got) == len(rows)
