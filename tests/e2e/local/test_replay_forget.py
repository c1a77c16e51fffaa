"""``headwater replay`` and ``headwater forget`` on the local stack, end to end through
the CLI: a run dead-letters records, the lookup is fixed, replay writes what now succeeds
and keeps what still fails with its new error, a second replay finds nothing, and forget
removes a person from the warehouse, the dead-letters and the raw objects."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from headwater.cli import app

ROOT = Path(__file__).resolve().parents[3]
KEY = "raw/orders/2024/05/01/day.ndjson"
LINES = [
    {"order_id": "1", "user_id": "u1", "value": 2.5, "category": "books", "ts": "2024-05-01T10:00:00Z"},
    {"order_id": "2", "user_id": "u404", "value": 3, "category": "toys", "ts": "2024-05-01T10:00:00Z"},
    {"order_id": "3", "user_id": "u2", "value": "abc", "category": "toys", "ts": "2024-05-01T10:00:00Z"},
    {"order_id": "4", "user_id": "u1", "value": 7, "category": "food", "ts": "2024-05-01T10:00:00Z"},
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Pulumi.local.yaml", tmp_path / "Pulumi.local.yaml")
    root = tmp_path / "data"
    (root / "lookup").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "orders" / "lookup" / "users.csv", root / "lookup")
    (root / KEY).parent.mkdir(parents=True)
    (root / KEY).write_text("".join(json.dumps(x) + "\n" for x in LINES) + '{"order_id": "5",\n')
    return tmp_path


def cli(project: Path, *args: str):
    result = CliRunner().invoke(app, [*args, "--project-dir", str(project), "--root",
                                      str(project / "data"), "--warehouse",
                                      str(project / "wh.duckdb")])
    return result


def rows(project: Path) -> list[tuple]:
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        return con.execute("select order_id, user_id, value_cents from orders "
                           "order by order_id").fetchall()


def entries(project: Path, replayed: bool = False) -> list[dict]:
    base = project / "data" / "deadletter" / "orders"
    return [json.loads(x) for f in sorted(base.rglob("*.ndjson"))
            if ("_replayed" in f.parts) == replayed for x in f.read_text().splitlines()]


def test_replay_writes_what_now_succeeds_keeps_the_rest_and_never_twice(project: Path):
    assert cli(project, "run", "--no-progress", "--pipeline", "orders").exit_code == 0
    assert [r[0] for r in rows(project)] == ["1", "4"]
    before = entries(project)
    assert sorted(e["step"] for e in before) == ["1:cents", "3:enrich", "decode"]

    dry = cli(project, "replay", "--pipeline", "orders", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert entries(project) == before and [r[0] for r in rows(project)] == ["1", "4"]

    with (project / "data" / "lookup" / "users.csv").open("a") as f:
        f.write("u404,bronze,US\n")  # the lookup is fixed
    result = cli(project, "replay", "--pipeline", "orders")
    assert result.exit_code == 0, result.output

    assert rows(project) == [("1", "u1", 250), ("2", "u404", 300), ("4", "u1", 700)]
    still = entries(project)
    assert sorted((e["step"], e["error_type"]) for e in still) == [
        ("1:cents", "ValueError"), ("decode", "JSONDecodeError")]
    assert len(entries(project, replayed=True)) == 3  # the original file, moved
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        ids = con.execute("select _headwater_id from orders where order_id = '2'").fetchall()
    assert ids[0][0].endswith("-2-0")  # the id of its source object and line

    # the kept entries are in a new file: replaying again runs them again, writes nothing new
    again = cli(project, "replay", "--pipeline", "orders")
    assert again.exit_code == 0
    assert len(rows(project)) == 3 and len(entries(project)) == 2


def test_replay_since_a_later_day_finds_nothing(project: Path):
    assert cli(project, "run", "--no-progress", "--pipeline", "orders").exit_code == 0
    result = cli(project, "replay", "--pipeline", "orders", "--since", "2999-01-01")
    assert result.exit_code == 0 and len(entries(project)) == 3
    bad = cli(project, "replay", "--pipeline", "orders", "--since", "yesterday")
    assert bad.exit_code == 1 and "not a date" in bad.output


def test_forget_removes_a_person_from_warehouse_deadletters_and_raw(project: Path):
    assert cli(project, "run", "--no-progress", "--pipeline", "orders").exit_code == 0
    result = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u404")
    assert result.exit_code == 0, result.output
    assert all(e.get("record", {}).get("user_id") != "u404" for e in entries(project))
    assert "u404" not in (project / "data" / KEY).read_text()
    result = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u1")
    assert result.exit_code == 0
    assert [r[0] for r in rows(project)] == []
    raw = (project / "data" / KEY).read_text()
    assert '"u1"' not in raw and '"u2"' in raw  # others stay
    assert "2 warehouse row(s)" in result.output
    assert cli(project, "forget", "--pipeline", "orders", "--where", "nofield").exit_code == 1


def ndjson(records: list[dict]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in records).encode()


CSV = ('order_id,user_id,value,category,ts\n'
       '1,u1,2.5,books,2024-05-03T10:00:00Z\n'
       '2,u2,3,"toys\nand games",2024-05-03T10:00:00Z\n'   # a quoted newline
       '3,"u1",7,"food, fresh",2024-05-03T10:00:00Z\n'
       '4,u3,1,u1,2024-05-03T10:00:00Z\n')                   # u1, but not as user_id
CSV_KEPT = ('order_id,user_id,value,category,ts\n'
            '2,u2,3,"toys\nand games",2024-05-03T10:00:00Z\n'
            '4,u3,1,u1,2024-05-03T10:00:00Z\n')


def parquet(path: Path, user_ids: list[str | None]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "order_id": pa.array([str(i) for i in range(1, len(user_ids) + 1)]),
        "user_id": pa.array(user_ids, pa.string()),
        "value": pa.array([1.5] * len(user_ids), pa.float64()),
    }), path)


def test_forget_rewrites_gzip_csv_json_and_parquet_raw_objects(project: Path):
    import pyarrow.parquet as pq

    raw = project / "data" / "raw" / "orders" / "2024" / "05"
    (raw / "02").mkdir(parents=True)
    (raw / "02" / "day.ndjson.gz").write_bytes(gzip.compress(ndjson(LINES)))
    (raw / "02" / "magic.ndjson").write_bytes(gzip.compress(ndjson(LINES)))  # gzip by its bytes
    (raw / "02" / "day.csv").write_text(CSV, newline="")
    (raw / "02" / "day.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    (raw / "02" / "day.json").write_text(json.dumps([
        {"order_id": "1", "user_id": "u1"},
        {"order_id": "2", "user_id": "u2", "big": 12345678901234567890123}]))
    parquet(raw / "02" / "day.parquet", ["u1", "u2", "u1", None])
    schema = pq.read_schema(raw / "02" / "day.parquet")

    result = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u1")
    assert result.exit_code == 0, result.output
    # KEY 2 lines, both gzip ndjson 2 each, csv 2, csv.gz 2, json 1, parquet 2
    assert "13 dead-letter entries or raw records in 7 file(s)" in " ".join(result.output.split())

    others = ndjson([x for x in LINES if x["user_id"] != "u1"])
    for name in ("day.ndjson.gz", "magic.ndjson"):
        data = (raw / "02" / name).read_bytes()
        assert data[:2] == b"\x1f\x8b" and gzip.decompress(data) == others
    assert (raw / "02" / "day.csv").read_bytes() == CSV_KEPT.encode()
    data = (raw / "02" / "day.csv.gz").read_bytes()
    assert data[:2] == b"\x1f\x8b" and gzip.decompress(data) == CSV_KEPT.encode()
    assert json.loads((raw / "02" / "day.json").read_text()) == [
        {"order_id": "2", "user_id": "u2", "big": 12345678901234567890123}]
    pf = pq.ParquetFile(raw / "02" / "day.parquet")
    assert pf.schema_arrow == schema
    assert pf.metadata.row_group(0).column(0).compression == "SNAPPY"
    assert pf.read().to_pylist() == [
        {"order_id": "2", "user_id": "u2", "value": 1.5},
        {"order_id": "4", "user_id": None, "value": 1.5}]

    again = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u1")
    assert again.exit_code == 0 and "in 0 file(s)" in " ".join(again.output.split())


def test_forget_reports_a_truncated_gzip_and_still_rewrites_the_rest(project: Path):
    raw = project / "data" / "raw" / "orders" / "2024" / "05" / "02"
    raw.mkdir(parents=True)
    broken = gzip.compress(ndjson(LINES))[:-30]
    (raw / "broken.ndjson.gz").write_bytes(broken)
    (raw / "good.ndjson.gz").write_bytes(gzip.compress(ndjson(LINES)))

    result = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u1")
    assert result.exit_code == 1
    assert "raw/orders/2024/05/02/broken.ndjson.gz" in result.output
    assert "NOT checked" in result.output and "by hand" in result.output
    assert (raw / "broken.ndjson.gz").read_bytes() == broken
    others = ndjson([x for x in LINES if x["user_id"] != "u1"])
    assert gzip.decompress((raw / "good.ndjson.gz").read_bytes()) == others
    assert '"u1"' not in (project / "data" / KEY).read_text()


def test_forget_without_pyarrow_names_the_parquet_object_and_changes_nothing(
        project: Path, monkeypatch: pytest.MonkeyPatch):
    path = project / "data" / "raw" / "orders" / "day.parquet"
    parquet(path, ["u1", "u2"])
    before = path.read_bytes(), (project / "data" / KEY).read_bytes()
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails

    result = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u1")
    assert result.exit_code == 1
    assert "raw/orders/day.parquet" in result.output and "headwater[parquet]" in result.output
    assert (path.read_bytes(), (project / "data" / KEY).read_bytes()) == before


def test_forget_finds_the_person_in_undecoded_and_damaged_dead_letter_entries(project: Path):
    """A line that was not UTF-8 is dead-lettered with its bytes as ``raw_b64``; a damaged
    entry (not JSON) holds the pair in its text: both go, the others stay."""
    import base64

    day = project / "data" / "deadletter" / "orders" / "dt=2024-05-01"
    day.mkdir(parents=True)
    not_utf8 = b'{"order_id": "8", "user_id": "u42", "note": "caf\xe9"}'
    other = b'{"order_id": "9", "user_id": "u7", "note": "caf\xe9"}'
    lines = [
        {"step": "decode", "line": 1, "raw_b64": base64.b64encode(not_utf8).decode()},
        {"step": "decode", "line": 2, "raw_b64": base64.b64encode(other).decode()},
        {"step": "3:enrich", "line": 3, "record": {"order_id": "10", "user_id": "u5"}},
    ]
    body = ndjson(lines) + b'{"step": "decode", "raw": "{\\"user_id\\": \\"u42\\", trunc\n' \
        + b'{"step": "decode", "raw": "{\\"user_id\\": \\"u5\\", trunc\n'
    (day / "entries.ndjson").write_bytes(body)
    result = cli(project, "forget", "--pipeline", "orders", "--where", "user_id=u42")
    assert result.exit_code == 0, result.output
    kept = (day / "entries.ndjson").read_bytes().splitlines()
    assert kept == body.splitlines()[1:3] + body.splitlines()[4:]
