"""Tests of the behaviour-log loader: real Taobao data, each source, cleaning and errors."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decay_model.errors import ConfigError, DataValidationError
from decay_model.logs import (
    BEHAVIORS,
    REQUIRED_COLUMNS,
    SOURCES,
    TMALL_YEAR,
    BehaviourLog,
    LoadReport,
    LogWarning,
    SourceSpec,
    describe_sources,
    from_frame,
    load_log,
)

CODE = {name: code for code, name in enumerate(BEHAVIORS)}


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def error_of(func: Callable[[], object]) -> str:
    """Call ``func``, which must raise DataValidationError, and return its one-line message."""
    with pytest.raises(DataValidationError) as info:
        func()
    message = str(info.value)
    assert "\n" not in message, message
    assert "Traceback" not in message
    return message


def assert_canonical(log: BehaviourLog) -> None:
    events = log.events
    expected = {
        "user_id": "int64",
        "item_id": "int64",
        "category_id": "int64",
        "behavior": "int8",
        "timestamp": "int64",
    }
    assert {c: str(events[c].dtype) for c in REQUIRED_COLUMNS} == expected
    assert isinstance(events.index, pd.RangeIndex)
    assert events.index.start == 0
    keys = events[["user_id", "timestamp"]].to_numpy()
    assert (np.lexsort((keys[:, 1], keys[:, 0])) == np.arange(len(keys))).all()
    report = log.report
    assert report.rows_read == report.rows_kept + sum(report.dropped.values())
    assert report.rows_kept == len(events)


# --------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------


def test_taobao_head_loads_with_the_verified_counts(taobao_path: Path) -> None:
    log = load_log(taobao_path)
    assert_canonical(log)
    assert log.report.source == "taobao"
    assert log.report.rows_read == 84_475
    assert log.n_events == 84_475
    assert log.report.dropped == {}
    assert log.report.warnings == ()
    assert log.n_users == 815
    assert log.n_categories == 2_914
    assert log.n_items == 55_368
    counts = log.events["behavior"].value_counts().to_dict()
    assert counts == {
        CODE["view"]: 75_872,
        CODE["cart"]: 4_497,
        CODE["fav"]: 2_356,
        CODE["buy"]: 1_750,
    }
    assert log.id_maps == {}
    # first line of the file is user 1's event at 1511544070; the 35 early rows reach 2017-09-11
    assert log.t_min < 1511539200 < log.t_max <= 1512316799
    summary = log.report.summary()
    assert summary.startswith("read 84,475 rows from ") and summary.endswith(
        "(source taobao); kept 84,475; dropped 0"
    )
    assert len(log.fingerprint()) == 64


def test_taobao_head_explicit_source_and_fingerprint_is_layout_free(
    taobao_path: Path, tmp_path: Path
) -> None:
    by_detection = load_log(taobao_path)
    explicit = load_log(taobao_path, "taobao")
    assert explicit.fingerprint() == by_detection.fingerprint()
    # The same events written as canonical Parquet give the same fingerprint.
    parquet = tmp_path / "events.bin"
    by_detection.events.to_parquet(parquet)
    assert load_log(parquet).fingerprint() == by_detection.fingerprint()


# --------------------------------------------------------------------------------------------
# Layouts and sources
# --------------------------------------------------------------------------------------------


def test_headerless_taobao_layout(tmp_path: Path) -> None:
    path = write(tmp_path, rows("2,20,200,buy,1000", "1,10,100,pv,300", "1,11,100,cart,200"))
    log = load_log(path)
    assert log.report.source == "taobao"
    assert log.events.to_dict("list") == {
        "user_id": [1, 1, 2],
        "item_id": [11, 10, 20],
        "category_id": [100, 100, 200],
        "behavior": [CODE["cart"], CODE["view"], CODE["buy"]],
        "timestamp": [200, 300, 1000],
    }


def test_header_aliases_any_order_and_case_extra_columns(tmp_path: Path) -> None:
    text = rows(
        "TS,Event,shop,ItemID,UID,Category,Dwell_Time",
        "1700000000,view,x,7,1,3,1.5",
        "1700000001,BUY ,x,7,1,3,",
    )
    log = load_log(write(tmp_path, text))
    assert log.report.source == "canonical"
    assert list(log.events.columns) == [*REQUIRED_COLUMNS, "duration"]
    assert log.events["behavior"].tolist() == [CODE["view"], CODE["buy"]]
    assert log.events["duration"].tolist()[0] == 1.5
    assert np.isnan(log.events["duration"].tolist()[1])


def test_tab_separated_and_positional_duration(tmp_path: Path) -> None:
    log = load_log(write(tmp_path, rows("1\t2\t3\tclick\t10\t4.0", "1\t2\t3\tfav\t11\t0")))
    assert log.events["behavior"].tolist() == [CODE["click"], CODE["fav"]]
    assert log.events["duration"].tolist() == [4.0, 0.0]


def test_tmall_codes_names_and_mmdd_dates(tmp_path: Path) -> None:
    text = rows(
        "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type",
        "5,1,9,0,0,1111,0",
        "5,2,9,0,0,1111,2",
        "5,3,9,0,0,0511,3",
        "6,3,9,0,0,229,1",  # 29 Feb does not exist in 2015
    )
    path = write(tmp_path, text)
    message = error_of(lambda: load_log(path))
    assert "column timestamp, line 5" in message and "229" in message and "mmdd" in message
    path = write(tmp_path, text.replace(",229,1", ",228,cart"))
    with pytest.warns(LogWarning, match="without a year"):
        log = load_log(path)
    assert log.report.source == "tmall"
    assert TMALL_YEAR == 2015
    day = pd.Timestamp("2015-11-11", tz="UTC").timestamp()
    may = pd.Timestamp("2015-05-11", tz="UTC").timestamp()
    feb = pd.Timestamp("2015-02-28", tz="UTC").timestamp()
    assert log.events[["user_id", "behavior", "timestamp"]].values.tolist() == [
        [5, CODE["fav"], may],
        [5, CODE["click"], day],
        [5, CODE["buy"], day],
        [6, CODE["cart"], feb],
    ]
    assert any("within-day order is lost" in w for w in log.report.warnings)
    repeated = write(tmp_path, text.replace(",229,1", ",1111,0").replace("6,3,9", "5,1,9"))
    with pytest.warns(LogWarning) as record:
        log = load_log(repeated)
    assert log.report.dropped == {"exact_duplicate": 1}
    assert [str(w.message) for w in record] == list(log.report.warnings)
    assert "genuine repeats" in log.report.warnings[-1]


def test_tmall_parquet_with_integer_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user_id": pa.array([1, 1], pa.int32()),
            "item_id": pa.array([2, 3], pa.int32()),
            "cat_id": pa.array([4, 4], pa.int16()),
            "time_stamp": pa.array([601, 602], pa.int16()),
            "action_type": pa.array([0, 2], pa.int8()),
        }
    )
    path = tmp_path / "tmall.parquet"
    pq.write_table(table, path)
    with pytest.warns(LogWarning):
        log = load_log(path)
    assert log.report.source == "tmall"
    assert log.events["behavior"].tolist() == [CODE["click"], CODE["buy"]]


def test_retailrocket_with_item_category_csv(tmp_path: Path) -> None:
    events = write(
        tmp_path,
        rows(
            "timestamp,visitorid,event,itemid,transactionid",
            "1433221332117,257597,view,355908,",
            "1433224214164,992329,addtocart,248676,",
            "1433221999827,257597,transaction,111016,42",
            "1433221999999,257597,view,999,",  # item without a category
        ),
        "events.csv",
    )
    message = error_of(lambda: load_log(events))
    assert "category_id" in message and "item_categories" in message
    categories = write(tmp_path, rows("itemid,categoryid", "355908,1", "248676,2", "111016,3"), "c.csv")
    log = load_log(events, item_categories=categories)
    assert log.report.source == "retailrocket"
    assert log.report.dropped == {"no_category": 1}
    assert_canonical(log)
    assert log.events.to_dict("list") == {
        "user_id": [257597, 257597, 992329],
        "item_id": [355908, 111016, 248676],
        "category_id": [1, 3, 2],
        "behavior": [CODE["view"], CODE["buy"], CODE["cart"]],
        "timestamp": [1433221332, 1433221999, 1433224214],
    }


def test_retailrocket_item_properties_latest_category_wins(tmp_path: Path) -> None:
    events = write(
        tmp_path,
        rows("timestamp,visitorid,event,itemid", "1433221332117,1,view,10", "1433221332118,1,view,11"),
        "events.csv",
    )
    part1 = write(
        tmp_path,
        rows(
            "timestamp,itemid,property,value",
            "1435460400000,10,categoryid,500",
            "1431226800000,10,categoryid,400",  # older: loses
            "1431226800000,10,available,1",
            "1431226800000,11,790,n5.000",
        ),
        "item_properties_part1.csv",
    )
    part2 = write(
        tmp_path,
        rows("timestamp,itemid,property,value", "1431226800000,11,categoryid,77"),
        "p2.csv",
    )
    log = load_log(events, item_categories=[part1, part2])
    assert log.events["category_id"].tolist() == [500, 77]


def test_canonical_codes_and_iso_times(tmp_path: Path) -> None:
    text = rows(
        "user_id,item_id,category_id,behavior,timestamp",
        "1,1,1,4,2017-11-25T10:00:00+08:00",
        "1,1,1,0,2017-11-25 01:00:00",
        "1,2,1,click,2017-11-25T02:00:00.900Z",
    )
    log = load_log(write(tmp_path, text))
    assert log.report.source == "canonical"
    base = int(pd.Timestamp("2017-11-25", tz="UTC").timestamp())
    assert log.events["timestamp"].tolist() == [base + 3600, base + 2 * 3600, base + 2 * 3600]
    assert log.events["behavior"].tolist() == [CODE["view"], CODE["buy"], CODE["click"]]
    assert log.report.warnings == ()


def test_float_seconds_are_floored_and_dates_warn(tmp_path: Path) -> None:
    log = load_log(write(tmp_path, rows("1,1,1,view,100.9", "1,1,1,buy,99.99")))
    assert log.events["timestamp"].tolist() == [99, 100]
    path = write(tmp_path, rows("1,1,1,view,2017-11-25", "1,2,1,view,2017-11-24", "1,3,1,buy,2017-11-25"))
    with pytest.warns(LogWarning, match="within-day order is lost") as record:
        log = load_log(path)
    assert record[0].filename == __file__  # the warning points at the caller
    assert log.events["item_id"].tolist() == [2, 1, 3]  # stable within the day
    assert log.report.warnings and "3 of 3" in log.report.warnings[0]


def test_parquet_found_by_magic_bytes_with_datetime_column(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "user": [2, 1],
            "item": [5, 6],
            "category": [7, 8],
            "behaviour": pd.Categorical(["fav", "cart"]),
            "event_time": pd.to_datetime(["2020-01-01 00:00:01", "2020-01-01 00:00:00"], utc=True),
        }
    )
    path = tmp_path / "events.dat"
    frame.to_parquet(path)
    log = load_log(path)
    start = int(pd.Timestamp("2020-01-01", tz="UTC").timestamp())
    assert log.events[["user_id", "timestamp"]].values.tolist() == [[1, start], [2, start + 1]]
    assert log.events["behavior"].tolist() == [CODE["cart"], CODE["fav"]]


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"uid": [1, 2], "item": [1, 1], "category": [1, 1], "event": ["view", "zoom"], "ts": [1, 2]}
    )
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    message = error_of(lambda: load_log(path, "canonical"))
    assert message.startswith(f"{path}: column behavior, row 2: unknown value 'zoom'")


def test_text_ids_are_factorized_on_sorted_values_across_batches(tmp_path: Path) -> None:
    lines = [f"u{i % 3},{i},c{i % 2},view,{1000 + i}" for i in range(40)]
    lines[30] = "u1,30,7,view,1030"  # an integer-looking category in a later block
    log = load_log(write(tmp_path, rows(*lines)), "canonical", block_size=128)
    assert list(log.id_maps) == ["user_id", "category_id"]
    assert log.id_maps["user_id"].tolist() == ["u0", "u1", "u2"]
    assert log.id_maps["category_id"].tolist() == ["7", "c0", "c1"]
    users = log.id_maps["user_id"][log.events["user_id"]].tolist()
    assert users == sorted(users)
    assert log.n_events == 40


def test_exact_duplicates_dropped_and_ties_keep_file_order(tmp_path: Path) -> None:
    text = rows(
        "1,1,1,view,5",
        "1,2,1,cart,5",
        "1,1,1,view,5",  # exact duplicate of line 1
        "1,1,1,buy,5",
        "0,9,9,view,7",
        "1,2,1,cart,5",  # exact duplicate of line 2
    )
    log = load_log(write(tmp_path, text))
    assert log.report.dropped == {"exact_duplicate": 2}
    assert log.events[["user_id", "item_id", "behavior"]].values.tolist() == [
        [0, 9, CODE["view"]],
        [1, 1, CODE["view"]],
        [1, 2, CODE["cart"]],
        [1, 1, CODE["buy"]],
    ]
    assert log.report.summary().endswith("kept 4; dropped 2 (exact_duplicate 2)")


def test_blank_lines_are_counted_and_line_numbers_stay_exact(tmp_path: Path) -> None:
    path = write(tmp_path, "1,1,1,pv,5\n\n1,2,1,pv,6\n\n1,3,1,zoom,7\n")
    message = error_of(lambda: load_log(path))
    assert "line 5" in message and "'zoom'" in message
    log = load_log(write(tmp_path, "1,1,1,pv,5\n\n1,2,1,pv,6\n"))
    assert log.report.dropped == {"blank_line": 1}
    assert log.report.rows_read == 3 and log.n_events == 2


def test_line_numbers_across_small_blocks(tmp_path: Path) -> None:
    lines = [f"{i},{i},1,pv,{100 + i}" for i in range(200)]
    lines[150] = "150,150,1,pv,yesterday"
    message = error_of(
        lambda: load_log(write(tmp_path, rows("user,item,category,behavior,ts", *lines)), block_size=256)
    )
    assert "line 152" in message and "'yesterday'" in message


def test_from_frame_accepts_names_and_codes_and_validates(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [3, 3, 1],
            "item_id": [1, 2, 3],
            "category_id": [1, 1, 2],
            "behavior": ["buy", "view", "cart"],
            "timestamp": [30, 20, 10],
            "other": ["x", "y", "z"],
        }
    )
    log = from_frame(frame)
    assert log.report.path == "<frame>" and log.report.source == "canonical"
    assert log.events["behavior"].tolist() == [CODE["cart"], CODE["view"], CODE["buy"]]
    coded = from_frame(frame.assign(behavior=[4, 0, 2]).astype({"behavior": "int8"}))
    assert coded.fingerprint() == log.fingerprint()
    bad = frame.assign(behavior=["buy", "view", "zoom"])
    message = error_of(lambda: from_frame(bad, name="synthetic"))
    assert message.startswith("synthetic: column behavior, row 2:") and "'zoom'" in message
    message = error_of(lambda: from_frame(frame.drop(columns="timestamp")))
    assert "missing required column timestamp" in message
    message = error_of(lambda: from_frame(frame.assign(timestamp=[1, -1, 2])))
    assert "column timestamp, row 1" in message and "negative" in message
    message = error_of(lambda: from_frame(frame.assign(behavior=["view", 3, "buy"])))
    assert "column behavior" in message and "cannot be read" in message


def test_fingerprint_changes_with_content() -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [1, 1],
            "category_id": [1, 1],
            "behavior": [0, 4],
            "timestamp": [1, 2],
        }
    )
    one = from_frame(frame).fingerprint()
    assert one == from_frame(frame.iloc[::-1]).fingerprint()
    assert one != from_frame(frame.assign(timestamp=[1, 3])).fingerprint()
    assert one != from_frame(frame.assign(behavior=[0, 3])).fingerprint()


def test_sources_table_and_spec() -> None:
    assert set(SOURCES) == {"taobao", "tmall", "retailrocket", "canonical"}
    assert all(isinstance(spec, SourceSpec) for spec in SOURCES.values())
    for spec in SOURCES.values():
        assert set(spec.behavior_map.values()) <= set(BEHAVIORS)
        assert set(BEHAVIORS) <= spec.vocabulary().keys()
    table = describe_sources()
    assert table.startswith("| source |")
    assert all(f"`{name}`" in table for name in SOURCES)
    assert "`pv`->`view`" in table and "`addtocart`->`cart`" in table


def test_summary_lists_warnings() -> None:
    report = LoadReport("x.csv", "canonical", 10, 7, {"exact_duplicate": 3}, ("a",))
    assert report.summary() == (
        "read 10 rows from x.csv (source canonical); kept 7; dropped 3 (exact_duplicate 3); 1 warning(s)"
    )


# --------------------------------------------------------------------------------------------
# Errors: one line, naming file, column, line, value and what was expected
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    message = error_of(lambda: load_log(path))
    assert str(path) in message and "file not found" in message


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    message = error_of(lambda: load_log(write(tmp_path, "", "empty.csv")))
    assert "empty.csv" in message and "0 bytes" in message
    message = error_of(lambda: load_log(write(tmp_path, "user_id,item_id,category_id,behavior,timestamp\n")))
    assert "empty log" in message and "no data rows" in message
    message = error_of(lambda: load_log(write(tmp_path, "\n\n")))
    assert "empty" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01\x02\x03garbage\xff\xfe", "binary data"),
        (b"\xff\xfe\xfa\xfb,1,2\n", "not UTF-8"),
        (b'{"user_id": 1, "item_id": 2}', "JSON"),
        (b'[{"user_id": 1}]\n', "JSON"),
        (b"1,2,pv\n3,4,buy\n", "3 field(s)"),
        (b"\x1f\x8b\x08\x00", "decompress"),
    ],
)
def test_not_a_table(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "weird.csv"
    path.write_bytes(content)
    message = error_of(lambda: load_log(path))
    assert "weird.csv" in message and expected in message


def test_parquet_extension_without_magic_and_corrupt_parquet(tmp_path: Path) -> None:
    fake = write(tmp_path, "1,1,1,pv,1\n", "log.parquet")
    assert "PAR1" in error_of(lambda: load_log(fake))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"PAR1" + b"x" * 40 + b"PAR1")
    assert "cannot be read as Parquet" in error_of(lambda: load_log(broken))


def test_too_few_fields_on_a_later_line(tmp_path: Path) -> None:
    path = write(tmp_path, rows("1,1,1,pv,5", "1,2,1,pv,6", "1,3,pv,7"))
    message = error_of(lambda: load_log(path))
    assert "line 3" in message and "4 field(s) where 5 were expected" in message


def test_missing_required_column(tmp_path: Path) -> None:
    path = write(tmp_path, rows("user_id,item_id,behavior,timestamp", "1,2,view,3"))
    message = error_of(lambda: load_log(path))
    assert "log.csv" in message and "missing required column category_id" in message
    assert "cat_id" in message and "item_categories" in message


def test_unknown_behaviour_names_line_value_and_vocabulary(tmp_path: Path) -> None:
    lines = [f"1,{i},1,pv,{i}" for i in range(1, 7)] + ["1,7,1,zoom,7"]
    message = error_of(lambda: load_log(write(tmp_path, rows(*lines))))
    assert message.startswith(f"{tmp_path / 'log.csv'}: column behavior, line 7:")
    assert "'zoom'" in message and "pv, cart, fav, buy" in message and "taobao" in message
    with_header = rows("user_id,item_id,category_id,behavior,timestamp", *lines)
    message = error_of(lambda: load_log(write(tmp_path, with_header), "taobao"))
    assert "line 8" in message


def test_undetectable_source(tmp_path: Path) -> None:
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,view,1", "1,1,1,zoom,2"))))
    assert "line 2" in message and "'zoom'" in message and "source=" in message


def test_bad_timestamps(tmp_path: Path) -> None:
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,5", "1,1,1,pv,yesterday"))))
    assert "column timestamp, line 2" in message and "'yesterday'" in message
    assert "ISO 8601" in message
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,5", "1,1,1,pv,now"))))
    assert "'now'" in message
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,5", "1,1,1,pv,-3"))))
    assert "column timestamp, line 2" in message and "negative" in message and "'-3'" in message
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,1511544070000"))))
    assert "too large" in message and "milliseconds" in message
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,1969-12-31T23:00:00"))))
    assert "negative" in message


def test_bad_ids(tmp_path: Path) -> None:
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,5", ",1,1,pv,6"))))
    assert "column user_id, line 2" in message and "blank" in message
    frame = pd.DataFrame(
        {
            "user_id": [1.0, 1.5],
            "item_id": [1, 1],
            "category_id": [1, 1],
            "behavior": [0, 0],
            "timestamp": [1, 2],
        }
    )
    message = error_of(lambda: from_frame(frame))
    assert "column user_id, row 1" in message and "non-integer" in message
    message = error_of(lambda: from_frame(frame.assign(user_id=[1, None])))
    assert "column user_id, row 1" in message and "missing" in message


def test_bad_duration(tmp_path: Path) -> None:
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,5,2.0", "1,1,1,pv,6,-1"))))
    assert "column duration, line 2" in message
    message = error_of(lambda: load_log(write(tmp_path, rows("1,1,1,pv,5,2.0", "1,1,1,pv,6,long"))))
    assert "column duration, line 2" in message and "'long'" in message


def test_duplicate_header_alias(tmp_path: Path) -> None:
    path = write(tmp_path, rows("user,uid,item,category,behavior,ts", "1,1,1,1,pv,1"))
    assert "user_id twice" in error_of(lambda: load_log(path))


def test_unknown_source_and_block_size(tmp_path: Path) -> None:
    path = write(tmp_path, rows("1,1,1,pv,1"))
    with pytest.raises(ConfigError, match="taobao, tmall, retailrocket, canonical"):
        load_log(path, "amazon")
    with pytest.raises(ConfigError, match="block_size"):
        load_log(path, block_size=0)


def test_no_warnings_for_clean_logs(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_log(write(tmp_path, rows("1,1,1,pv,1")))


# --------------------------------------------------------------------------------------------
# Property: a frame and its CSV round trip load to the same cleaned log
# --------------------------------------------------------------------------------------------

_EVENT = st.tuples(
    st.integers(0, 4),
    st.integers(0, 6),
    st.integers(0, 3),
    st.sampled_from(BEHAVIORS),
    st.integers(0, 20),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(_EVENT, min_size=1, max_size=40))
def test_csv_round_trip_matches_from_frame(tmp_path: Path, events: list[tuple]) -> None:
    frame = pd.DataFrame(events, columns=list(REQUIRED_COLUMNS))
    log = from_frame(frame)
    assert_canonical(log)
    expected_dups = int(frame.duplicated().sum())
    assert log.report.dropped.get("exact_duplicate", 0) == expected_dups
    assert log.n_events == len(frame.drop_duplicates())
    path = tmp_path / "round.csv"
    frame.to_csv(path, index=False)
    assert load_log(path, block_size=64).fingerprint() == log.fingerprint()
