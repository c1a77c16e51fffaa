"""Inputs shared by the matrix cells and the replay tests: orders with unique ids for
users the lookup knows, and `headwater replay` run on a deployed stack's settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
USERS = ("u1", "u2", "u3")


def orders(n: int, start: int = 1, *, bad_value: set[int] = frozenset()) -> list[dict]:
    """``n`` orders with order ids ``start..start+n-1``; ``bad_value`` ids get a value the
    cents step refuses (they are dead-lettered by the chain)."""
    return [{"order_id": str(i), "user_id": USERS[i % 3], "category": "books",
             "value": "abc" if i in bad_value else i + 0.25, "ts": "2024-05-01T10:00:00Z"}
            for i in range(start, start + n)]


def ndjson(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def ids(records: list[dict]) -> list[str]:
    return [r["order_id"] for r in records]


def replay_cli(tmp_path: Path, stack: str, settings: dict[str, str], *args: str,
               region: str | None = None, outputs: dict[str, Any] | None = None) -> Any:
    """``headwater replay --stack STACK --pipeline orders --json`` on a project holding the
    example ``Pulumi.<stack>.yaml`` (with ``region`` where given: the emulator's), its
    outputs given as the file ``pulumi stack output --json`` would print: the deployed
    function's settings (``function_settings``) and any other ``outputs``. Returns the CLI
    result."""
    from typer.testing import CliRunner

    from headwater.cli import app

    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")
    if region:
        text = re.sub(r"(?m)^(\s*aws:region:).*$", rf"\1 {region}", text)
    (project / f"Pulumi.{stack}.yaml").write_text(text, encoding="utf-8")
    path = project / "outputs.json"
    path.write_text(json.dumps({**(outputs or {}), "function_settings": {"orders": {
        k: v for k, v in settings.items()
        if k.startswith("HEADWATER_") and k != "HEADWATER_MANIFEST"}}}), encoding="utf-8")
    return CliRunner().invoke(app, ["replay", "--stack", stack, "--pipeline", "orders",
                                    "--project-dir", str(project), "--outputs", str(path),
                                    "--json", *args])


def replayed(result: Any) -> dict[str, Any]:
    """The JSON report of a replay that succeeded."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_replay_of_two_lookup_failures(replay: Any, deadletters: Any, sink_rows: Any,
                                        first: str, entries: list[dict[str, Any]]) -> None:
    """The course of a replay after one of two records dead-lettered by ``enrich`` (users
    u9 and u8, orders 2 and 4 of five) got its user: ``replay(*args)`` runs the command
    and returns its report; ``deadletters()`` and ``sink_rows()`` read the stack. The dry
    run changes nothing; the replay writes order 2 and keeps order 4 with its new error
    in a new file, moving the replayed one unchanged; a second replay runs only that
    file and writes nothing twice."""
    dry = replay("--dry-run")
    assert (dry["files"], dry["replayable"], dry["written"]) == ([first], 2, 0)
    assert len(sink_rows()) == 3 and list(deadletters()) == [first]

    report = replay()
    assert (report["replayable"], report["written"], report["failed_again"]) == (2, 1, 1)
    rows = {r["order_id"]: r for r in sink_rows()}
    assert sorted(rows) == ["1", "2", "3", "5"] and rows["2"]["country"] == "NL"
    assert len(sink_rows()) == 4
    dead = deadletters()
    moved = [n for n in dead if "/_replayed/" in n]
    assert len(moved) == 1 and dead[moved[0]] == entries  # marked: moved, unchanged
    (fresh,) = [n for n in dead if "/_replayed/" not in n]
    (again,) = dead[fresh]  # what still fails is kept, with its new error
    assert again["record"]["user_id"] == "u8" and again["step"] == "3:enrich"
    assert again["error_type"] == "LookupError" and again["message"]

    rerun = replay()  # only the new entry; nothing written twice
    assert (rerun["files"], rerun["written"], rerun["failed_again"]) == ([fresh], 0, 1)
    assert len(sink_rows()) == 4
