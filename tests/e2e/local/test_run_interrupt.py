"""Ctrl-C during ``headwater run``: a real SIGINT sent to a child process running the CLI.

The run must stop within a couple of seconds, roll back the object it was in the middle
of, print the summary of what it completed and exit 130; the warehouse then holds whole
objects only (every object in the ledger has all its rows, no other object has any).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")]

SMALL, LARGE = 1_000, 1_000_000  # records per object; a large one takes seconds to process


def write_project(tmp: Path) -> tuple[Path, dict[str, int]]:
    doc = {"config": {"headwater:cloud": "local", "headwater:pipelines": [{
        "name": "events",
        "source": {"prefix": "raw/", "format": "ndjson"},
        "transforms": [{"use": "schema", "with": {"fields": {"i": "int", "s": "str"}}}],
        "sink": {"table": "events", "columns": {"i": "bigint", "s": "string"}},
    }]}}
    (tmp / "Pulumi.t.yaml").write_text(yaml.safe_dump(doc))
    raw = tmp / "bucket" / "raw"
    raw.mkdir(parents=True)
    sizes = {"raw/000.ndjson": SMALL, "raw/001.ndjson": SMALL,
             "raw/002.ndjson": LARGE, "raw/003.ndjson": LARGE}
    for key, n in sizes.items():
        with (tmp / "bucket" / key).open("wb") as f:
            f.writelines(orjson.dumps({"i": i, "s": f"row {i} of {key}"}) + b"\n"
                         for i in range(n))
    return tmp / "bucket", sizes


def open_files(pid: int) -> set[str]:
    """Files open in the run's process or its worker processes (``--workers``)."""
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:  # closed meanwhile
            pass
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            out |= open_files(int(child))
        except OSError:  # gone meanwhile
            pass
    return out


def wait_until_processing(proc: subprocess.Popen, path: Path, timeout: float = 60) -> None:
    """Until ``path`` has stayed open for half a second: hashing a file before the run
    opens it for milliseconds, processing it keeps it open for seconds."""
    deadline = time.monotonic() + timeout
    since = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if str(path) in open_files(proc.pid):
            since = since or time.monotonic()
            if time.monotonic() - since >= 0.5:
                return
        else:
            since = None
        time.sleep(0.02)
    raise AssertionError(f"the run never processed {path}")


def test_sigint_stops_the_run_rolls_back_the_object_and_exits_130(tmp_path):
    bucket, sizes = write_project(tmp_path)
    wh = tmp_path / "w.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "headwater", "run", "--stack", "t", "--project-dir",
         str(tmp_path), "--root", str(bucket), "--warehouse", str(wh), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        wait_until_processing(proc, bucket / "raw" / "002.ndjson")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, errors = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out_text, err_text = out.decode(), errors.decode()

    assert proc.returncode == 130, (out_text, err_text)
    assert stopped_after < 2.5, f"took {stopped_after:.1f}s to stop"
    assert "Traceback" not in err_text and "SinkUnavailable" not in out_text + err_text
    # the summary of what completed: two objects, 2 x SMALL records
    row = next(line.split() for line in out_text.splitlines() if line.split()[:1] == ["events"])
    assert row[1:6] == ["2", "0", "0", str(2 * SMALL), str(2 * SMALL)], out_text
    assert "interrupted" in err_text and "raw/002.ndjson" in err_text, err_text
    assert "rolled back" in err_text

    with duckdb.connect(str(wh), read_only=True) as con:
        ledger = dict(con.execute(
            "SELECT object_key, written FROM _headwater_ledger WHERE pipeline = 'events'"
        ).fetchall())
        rows = dict(con.execute(
            "SELECT _headwater_object, count(*) FROM events GROUP BY 1").fetchall())
    assert ledger == {"raw/000.ndjson": SMALL, "raw/001.ndjson": SMALL}
    assert rows == {key: sizes[key] for key in ledger}  # whole objects only
