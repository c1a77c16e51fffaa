"""The ``headwater`` command line: run, backfill, status, validate, plan, package,
transforms list / new."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


class _PlainHelp:
    """Help that names what an option takes (``--root DIR``) instead of a type placeholder
    (``<path>``, ``<bool>``, ``<list[str]>``, which typer prints since 0.2x)."""

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if p.param_type_name == "argument":
                # typer shows an argument's type beside it whatever its metavar
                if hasattr(p, "display_type_rich"):
                    p.display_type_rich = lambda ctx: None
            elif p.metavar is None:
                p.metavar = "" if getattr(p, "is_flag", False) else p.name.upper()
        return params


class _Command(_PlainHelp, typer.core.TyperCommand):
    pass


class _Group(_PlainHelp, typer.core.TyperGroup):
    pass


app = typer.Typer(
    name="headwater",
    cls=_Group,
    help="Write a serverless data pipeline once; deploy it with Pulumi or run it locally.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
transforms_app = typer.Typer(help="List and scaffold transform plugins.", no_args_is_help=True,
                             cls=_Group)
app.add_typer(transforms_app, name="transforms")

# User text (config values, names, keys, plugin docs) is never markup: it is escaped
# (rich.markup.escape) or printed with markup=False, and emoji codes such as ":cloud:" in
# "headwater:cloud: ..." stay as written.
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)

# one default stack for every command: `local`, the stack that runs on this machine
StackOpt = Annotated[str, typer.Option("--stack", "-s", metavar="NAME",
                                       help="stack name: reads Pulumi.<stack>.yaml")]
ProjectOpt = Annotated[Path, typer.Option("--project-dir", metavar="DIR",
                                          help="folder holding Pulumi.<stack>.yaml")]


def _print_version(value: bool) -> None:
    if value:
        from headwater import __version__

        console.print(f"headwater {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print headwater's version and exit")] = False,
) -> None:
    """Write a serverless data pipeline once; deploy it with Pulumi or run it locally."""


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def stack_file(stack: str, project_dir: Path) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load_stack(stack: str, project_dir: Path):  # -> StackConfig
    from headwater.spec import SpecError, load_stack_file

    try:
        return load_stack_file(stack_file(stack, project_dir))
    except SpecError as exc:
        raise fail(str(exc)) from None


@app.command(cls=_Command)
def validate(stack: StackOpt = "local", project_dir: ProjectOpt = Path(".")) -> None:
    """Check the stack config, every transform's settings and the cloud's own rules (the
    checks `pulumi preview` runs first); touches no data and needs no credentials."""
    config = load_stack(stack, project_dir)
    _check_transforms(config)
    if config.cloud != "local":
        _check_cloud_rules(stack, project_dir)
    table = Table(title=escape(f"stack {stack} ({config.cloud})"))
    for col in ("pipeline", "source", "steps", "sink"):
        table.add_column(col)
    for p in config.pipelines:
        table.add_row(*map(escape, (p.name, f"{p.source.prefix} ({p.source.format})",
                                    " -> ".join(s.use for s in p.transforms) or "(none)",
                                    p.sink.table)))
    console.print(table)
    console.print(f"[green]ok[/]: {len(config.pipelines)} pipeline(s) valid")


def _check_transforms(config) -> None:  # config: StackConfig
    """Every step of every pipeline built with its settings: all problems in one run."""
    from transforms.registry import RegistryError, default_registry

    registry = default_registry()
    problems = []
    for p in config.pipelines:
        for index, step in enumerate(p.transforms):
            try:
                registry.build(step.use, step.with_, pipeline=p.name, step=index)
            except RegistryError as exc:
                problems.append(str(exc))
    if problems:
        raise fail("\n".join(problems))


def _check_cloud_rules(stack: str, project_dir: Path) -> None:
    """The cloud's plan-time rules, by running the Pulumi program in check-only mode (the
    CLI never imports the components: it runs the program, as `pulumi` does)."""
    from headwater.program import ProgramError, check_program

    try:
        check_program(stack, project_dir)
    except ProgramError as exc:
        raise fail(str(exc)) from None


@app.command(cls=_Command)
def plan(
    stack: StackOpt,
    project_dir: ProjectOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable plan")] = False,
) -> None:
    """Evaluate the Pulumi program for the stack under its cloud's mocks (no credentials,
    no network): the resource tree, a count per type, and every breach of the provider
    SDK's schema, the cloud's naming rules and the policy rules. Exits 1 on any."""
    from headwater.plan import ProgramError, plan_stack

    config = load_stack(stack, project_dir)
    _check_transforms(config)
    try:
        result = plan_stack(stack, project_dir)
    except ProgramError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2, sort_keys=False) + "\n")
    else:
        _print_plan(result, f"stack {stack} ({config.cloud})")
    if result.violations:
        raise typer.Exit(1)


def _print_plan(result, title: str) -> None:  # result: headwater.plan.Plan
    from rich.tree import Tree

    tree = Tree(escape(title))

    def add(branch: Tree, node: dict) -> None:
        props = ", ".join(f"{k}={json.dumps(v)}" for k, v in node["properties"].items())
        label = f"[bold]{escape(node['type'])}[/] {escape(node['name'])}"
        label += " [dim](existing, read)[/]" if node["read"] else ""
        label += f"  [dim]{escape(props)}[/]" if props else ""
        sub = branch.add(label)
        for child in node["children"]:
            add(sub, child)

    for node in result.tree():
        add(tree, node)
    console.print(tree)
    counts = Table(title="resources per type")
    counts.add_column("type")
    counts.add_column("count", justify="right")
    for typ, n in result.counts().items():
        counts.add_row(escape(typ), str(n))
    console.print(counts)
    for v in result.violations:
        err.print(f"[bold red]violation[/] {escape(str(v))}", highlight=False, soft_wrap=True)
    total = len(result.resources)
    if result.violations:
        err.print(f"[bold red]{len(result.violations)} violation(s)[/] in {total} resources",
                  highlight=False)
    else:
        console.print(f"[green]ok[/]: {total} resources, 0 violations", highlight=False)


@transforms_app.command("list", cls=_Command)
def transforms_list(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Installed transforms: name, distribution, version, target and first doc line."""
    from transforms.registry import default_registry

    rows = default_registry().describe()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="headwater transforms")
    for col in ("name", "distribution", "version", "target", "doc"):
        table.add_column(col, overflow="fold")
    for r in rows:
        doc = f"[red]{escape(r['error'])}[/]" if r["error"] else escape(r["doc"])
        table.add_row(*map(escape, (r["name"], r["distribution"], r["version"], r["target"])),
                      doc)
    console.print(table)


@transforms_app.command("new", cls=_Command)
def transforms_new(
    name: Annotated[str, typer.Argument(metavar="NAME", help="transform name, e.g. mask_email (the `use:` name)")],
    directory: Annotated[Path, typer.Option(
        "--dir", metavar="DIR", help="folder to create headwater-<name>/ in")] = Path("."),
) -> None:
    """Scaffold an installable plugin package headwater-<name> with a test."""
    from headwater.scaffold import ScaffoldError, scaffold

    try:
        target = scaffold(name, directory)
    except ScaffoldError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]created[/] {escape(str(target))}", highlight=False)
    installed = installed_claims(name)
    if installed:
        err.print(f"[bold yellow]warning:[/] {escape(repr(name))} is already an installed "
                  f"transform ({escape(installed)}); installing this package next to it "
                  "makes the name claimed twice, which every pipeline using it refuses: "
                  "choose another name unless you mean to replace that distribution",
                  highlight=False, soft_wrap=True)
    console.print(f"  pip install -e {target}    then: headwater transforms list",
                  highlight=False, markup=False)


def installed_claims(name: str) -> str:
    """Who already provides transform ``name`` ("ref from dist version, ..."), or ""."""
    from transforms.registry import default_registry

    registry = default_registry()
    if name not in registry:
        return ""
    return ", ".join(f"{p.ref} from {p.distribution} {p.version}".strip()
                     for p in registry.claims(name))


@app.command(cls=_Command)
def run(
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    root: Annotated[Path, typer.Option(
        "--root", metavar="DIR", help="folder standing in for the bucket (keys are paths relative to it)")
    ] = Path("data"),
    warehouse: Annotated[Path, typer.Option(
        "--warehouse", metavar="FILE", help="DuckDB file the sink tables and the ledger go to")
    ] = Path(".headwater/warehouse.duckdb"),
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", "-p", metavar="NAME", help="run only this pipeline (repeatable)")] = None,
    reprocess: Annotated[bool, typer.Option(
        "--reprocess", help="process objects already done too, replacing their earlier rows")
    ] = False,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="show a progress bar while running")] = True,
    metrics_json: Annotated[Path | None, typer.Option(
        "--metrics-json", metavar="FILE",
        help="also write the run's metrics (the deployed functions' vocabulary) as JSON")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-j", min=1, metavar="N",
        help="processes that decode and transform objects (default: the number of cores); "
             "this process commits every object")] = None,
) -> None:
    """Run the stack's pipelines over the objects in --root, into a local DuckDB file."""
    from headwater.local import local_runner
    from headwater.report import RichProgress, metrics_document, summary_table

    config = load_stack(stack, project_dir)
    if not root.is_dir():
        raise fail(f"--root {root} is not a folder (it stands in for the bucket)")
    try:
        runner = local_runner(config, root, warehouse, pipelines=pipeline, reprocess=reprocess,
                              workers=workers or os.cpu_count() or 1)
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    bar = RichProgress(err) if progress else None
    runner.progress = bar or runner.progress
    import duckdb

    try:
        if bar is not None:
            with bar:
                report = runner.run()
        else:
            report = runner.run()
    except (duckdb.Error, OSError) as exc:  # e.g. another run holds the warehouse file's lock
        raise fail(f"{type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:  # Ctrl-C before the runner took over SIGINT
        raise fail("interrupted before any object was processed", 130) from None
    console.print(summary_table(report))
    if metrics_json is not None:
        from headwater.status import project_name

        doc = metrics_document(report, project_name(project_dir), stack)
        try:
            metrics_json.parent.mkdir(parents=True, exist_ok=True)
            metrics_json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise fail(f"--metrics-json {metrics_json}: {exc}") from None
    for e in report.errors:
        where = f"object {e.key!r}" if e.key else "could not start"
        err.print(f"[bold red]failed:[/] {escape(f'pipeline {e.pipeline!r}, {where}: {e.error}')}",
                  highlight=False, soft_wrap=True)
    console.print(f"warehouse: {warehouse}  dead-letters: {root / 'deadletter'}",
                  highlight=False, markup=False)
    if report.interrupted is not None:
        err.print(f"[bold yellow]interrupted:[/] {escape(interrupted_message(report))}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    if not report.ok:
        raise typer.Exit(1)


def interrupted_message(report) -> str:  # report: RunReport
    i = report.interrupted
    done = sum(p.objects for p in report.pipelines)
    where = (f"pipeline {i.pipeline!r}, object {i.key!r} was rolled back (none of its rows "
             "are in the warehouse)" if i.key else "stopped between objects")
    return (f"{where}; {done} object(s) committed before the stop. "
            "Run again to process the rest.")


def _pipeline_manifest(config, pipeline: str):  # config: StackConfig
    from headwater.local import local_manifests

    try:
        (manifest,) = local_manifests(config, [pipeline])
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    return manifest


def _local_manifest(stack: str, project_dir: Path, pipeline: str):
    config = load_stack(stack, project_dir)
    if config.cloud != "local":
        raise fail(f"stack {stack!r} is {config.cloud}: forget reads the local stack's "
                   "folders here; for the cloud warehouses, see README (Replay and forget)")
    return _pipeline_manifest(config, pipeline)


RootOpt = Annotated[Path, typer.Option(
    "--root", metavar="DIR", help="folder standing in for the bucket (holds deadletter/)")]
WarehouseOpt = Annotated[Path, typer.Option(
    "--warehouse", metavar="FILE", help="the local DuckDB warehouse")]
PipelineOpt = Annotated[str, typer.Option("--pipeline", "-p", metavar="NAME",
                                          help="the pipeline whose dead-letters to use")]


@app.command(cls=_Command)
def replay(
    pipeline: PipelineOpt,
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    root: RootOpt = Path("data"),
    warehouse: WarehouseOpt = Path(".headwater/warehouse.duckdb"),
    outputs: Annotated[Path | None, typer.Option(
        "--outputs", metavar="FILE", help="cloud: the stack's outputs as JSON (default: "
        "`pulumi stack output --json --stack NAME`)")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="DATE", help="only dead-letters of this day (YYYY-MM-DD) and later")
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="say what would be replayed; write and move nothing")] = False,
    notifications: Annotated[bool, typer.Option(
        "--notifications", help="cloud: also send the notifications the platform "
        "dead-lettered (SQS DLQ, Pub/Sub dead-letter subscription) back to the pipeline's "
        "queue or topic, so their objects run again")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Run dead-letter entries through the current chain: write what now succeeds, keep
    what still fails with its new error; replayed files move to <pipeline>/_replayed/.
    On a cloud stack it runs here with the deployed function's settings (the stack output
    function_settings) and your credentials, into the stack's own warehouse."""
    import datetime as dt

    if since is not None:
        try:
            dt.date.fromisoformat(since)
        except ValueError:
            raise fail(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    config = load_stack(stack, project_dir)
    manifest = _pipeline_manifest(config, pipeline)
    if notifications and config.cloud not in ("aws", "gcp"):
        raise fail("--notifications: " + (
            "the local stack has no queue; an object that failed stays in the source "
            "folder and the next run takes it" if config.cloud == "local" else
            f"{config.cloud} has no platform dead-letter queue here; replay already runs "
            "the notifications the function parked"))
    moved = None
    try:
        if config.cloud == "local":
            from runtimes.local.replay import replay_local

            report = replay_local(manifest, root, warehouse, since=since, dry_run=dry_run)
        else:
            report, moved = _replay_deployed(config, stack, project_dir, outputs, manifest,
                                             pipeline, since, dry_run, notifications)
    except typer.Exit:
        raise
    except Exception as exc:
        raise fail(f"replay of pipeline {pipeline!r} stopped: {type(exc).__name__}: {exc}. "
                   "Files replayed before the stop are marked; the file it was on and the "
                   "rest are untouched: run it again") from None
    if as_json:
        sys.stdout.write(json.dumps({
            "stack": stack, "cloud": config.cloud, "pipeline": pipeline, "dry_run": dry_run,
            "files": report.files, "entries": report.entries, "replayable": report.replayed,
            "blobs_rerun": report.redriven, "written": report.written,
            "failed_again": report.failed_again,
            "kept": [{"file": f, "reason": why} for f, why in report.kept],
            **({"notifications": {"from": moved.where, "to": moved.to, "moved": moved.moved}}
               if moved else {})}, indent=2) + "\n")
        return
    where = "" if config.cloud == "local" else f" on stack {stack} ({config.cloud})"
    table = Table(title=escape(f"replay {pipeline}{where}" + (" (dry run)" if dry_run else "")))
    cols = ["files", "entries", "replayable", "written", "failed again", "kept"]
    row = [len(report.files), report.entries, report.replayed, report.written,
           report.failed_again, len(report.kept)]
    if config.cloud == "azure":  # parked notifications, whose blobs run again whole
        cols.insert(3, "blobs re-run")
        row.insert(3, report.redriven)
    for col in cols:
        table.add_column(col, justify="right")
    table.add_row(*map(str, row))
    console.print(table)
    for name, why in dict.fromkeys(report.kept):
        err.print(f"[yellow]kept:[/] {escape(f'{name}: {why}')}", highlight=False,
                  soft_wrap=True)
    if moved:
        verb = "waiting in" if dry_run else "sent back from"
        console.print(escape(f"notifications {verb} {moved.where}: {moved.moved}"
                             + ("" if dry_run else f" (to {moved.to})")), highlight=False)


def _replay_deployed(config, stack: str, project_dir: Path, outputs: Path | None, manifest,
                     pipeline: str, since: str | None, dry_run: bool, notifications: bool):
    """(the replay's report, the notifications redriven or None), from the stack's
    outputs read once."""
    import contextlib

    from headwater.redrive import redrive
    from headwater.replay import ReplayError, function_settings, replay_deployed
    from headwater.status import StatusError

    try:
        stack_outputs = _stack_outputs(stack, project_dir, outputs)
        settings = function_settings(stack_outputs, pipeline, stack)
        if config.cloud == "aws" and config.region:  # the stack's region, not the shell's
            settings["AWS_DEFAULT_REGION"] = config.region
        # the runtime's structured log lines are diagnostics here: stderr, so stdout
        # holds only the report (and --json stays parseable)
        with contextlib.redirect_stdout(sys.stderr):
            report = replay_deployed(config.cloud, manifest, settings, since=since,
                                     dry_run=dry_run)
        moved = redrive(config.cloud, stack_outputs, pipeline, region=config.region,
                        dry_run=dry_run) if notifications else None
        return report, moved
    except (ReplayError, StatusError) as exc:
        raise fail(str(exc)) from None


@app.command(cls=_Command)
def forget(
    pipeline: PipelineOpt,
    where: Annotated[str, typer.Option("--where", metavar="FIELD=VALUE",
                                       help="the records to delete, e.g. user_id=u42")],
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    root: RootOpt = Path("data"),
    warehouse: WarehouseOpt = Path(".headwater/warehouse.duckdb"),
) -> None:
    """Delete a person's records: warehouse rows, dead-letter entries and raw source
    records where FIELD equals VALUE (right to be forgotten; local stack)."""
    from runtimes.local.replay import forget_local

    field_name, sep, value = where.partition("=")
    if not sep or not field_name.strip():
        raise fail(f"--where {where!r}: expected FIELD=VALUE, e.g. user_id=u42")
    manifest = _local_manifest(stack, project_dir, pipeline)
    try:
        report = forget_local(manifest, root, warehouse, field_name.strip(), value)
    except Exception as exc:
        raise fail(f"forget in pipeline {pipeline!r} failed: {type(exc).__name__}: {exc}") from None
    console.print(escape(f"forgot {field_name}={value} in pipeline {pipeline!r}: "
                         f"{report.rows} warehouse row(s), {report.entries} dead-letter "
                         f"entries or raw records in {len(report.files)} file(s)"),
                  highlight=False)
    for name in report.files:
        console.print(f"  rewritten: {name}", markup=False, highlight=False)
    for name, why in report.unreadable:
        err.print(f"[yellow]warning:[/] {escape(f'cannot read {name}: {why}')}",
                  highlight=False, soft_wrap=True)
    if report.unreadable:
        raise fail(f"{len(report.unreadable)} raw object(s) above could not be read and were "
                   f"NOT checked for {field_name}={value}: handle them by hand (fix or delete "
                   "them); everything else was forgotten")


@app.command(cls=_Command)
def package(
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="artifacts go to OUT/<stack>/")] = Path("dist"),
    wheelhouse: Annotated[Path | None, typer.Option(
        "--wheelhouse", metavar="DIR", help="wheel cache folder (default ~/.cache/headwater/wheels)")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="use only wheels already in the cache; never download")] = False,
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", "-p", metavar="NAME",
        help="package only this pipeline (repeatable)")] = None,
) -> None:
    """Build each pipeline's function artifact for the stack's cloud (reproducible bytes)."""
    from headwater.packaging import PackagingError, build_stack
    from headwater.packaging.errors import human

    config = load_stack(stack, project_dir)
    if config.cloud == "local":
        raise fail(f"stack {stack!r} runs locally (headwater:cloud local): there is nothing to "
                   "package, `headwater run` runs it. Pass the stack you deploy, e.g. "
                   "--stack aws")
    target = out / stack
    try:
        with err.status("packaging", spinner="dots") as status:
            artifacts = build_stack(config, target, pipelines=pipeline, wheelhouse=wheelhouse,
                                    offline=offline,
                                    progress=lambda msg: status.update(escape(f"packaging {msg}")))
    except PackagingError as exc:
        raise fail(str(exc)) from None
    from headwater.packaging import Artifact, layout_for

    limit = layout_for(config.cloud, config.python, config.arch).limits.unzipped
    layers = f", layers {config.layers}" if config.layers != "none" else ""
    table = Table(title=escape(
        f"stack {stack} ({config.cloud}, python {config.python}, {config.arch}{layers})"))
    unzipped_col = f"unzipped (limit {human(limit)})" if limit else "unzipped"
    for col in ("pipeline", "zipped", unzipped_col, "bytecode"):
        table.add_column(col, overflow="fold")
    rows: list[tuple[str, Artifact]] = []
    for a in artifacts:
        unzipped = human(a.unzipped_size) + (
            f" + layer {human(a.layer.unzipped_size)}" if a.layer else "")
        if limit:
            unzipped += f" ({a.total_unzipped / limit:.0%})"
        table.add_row(*map(escape, (
            a.pipeline, human(a.size), unzipped,
            f"Python {a.bytecode_python}" if a.bytecode else "none (see note)")))
        rows.append((a.pipeline, a))
        if a.layer is not None and a.layer.path not in {r[1].path for r in rows}:
            label = f"shared layer ({', '.join(a.in_layer)})"
            table.add_row(*map(escape, (
                label, human(a.layer.size), human(a.layer.unzipped_size),
                f"Python {a.layer.bytecode_python}" if a.layer.bytecode else "none (see note)")))
            rows.append((label, a.layer))
    console.print(table)
    for label, a in rows:
        console.print(f"{label}: {a.path}  sha256 {a.sha256}", highlight=False, markup=False,
                      soft_wrap=True)
    trimmed = sum(t["unzipped"] for a in artifacts for t in a.trimmed.values())
    trimmed += sum(t["unzipped"] for p in {str(a.layer.path): a.layer for a in artifacts
                                           if a.layer}.values() for t in p.trimmed.values())
    if trimmed:
        console.print(f"trimmed: {human(trimmed)} (unzipped) of headers, Cython sources, build "
                      "files and bundled tests that a function never runs", highlight=False,
                      markup=False)
    for note in dict.fromkeys(a.bytecode_note for a in artifacts if a.bytecode_note):
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)


@app.command(cls=_Command)
def status(
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", "-p", metavar="NAME", help="only this pipeline (repeatable)")] = None,
    since: Annotated[str, typer.Option(
        "--since", metavar="WINDOW", help="how far back: 30m, 1h, 2d")] = "1h",
    root: Annotated[Path, typer.Option(
        "--root", metavar="DIR", help="local: the folder `headwater run` read")] = Path("data"),
    warehouse: Annotated[Path, typer.Option(
        "--warehouse", metavar="FILE", help="local: the DuckDB file `headwater run` wrote")
    ] = Path(".headwater/warehouse.duckdb"),
    outputs: Annotated[Path | None, typer.Option(
        "--outputs", metavar="FILE", help="cloud: the stack's outputs as JSON (default: "
        "`pulumi stack output --json --stack NAME`)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable status")] = False,
) -> None:
    """Is each pipeline healthy? Records in, written, dead-lettered, queue and DLQ depth,
    oldest waiting notification and the last error, over --since. Exits 1 when a pipeline
    breaks an alarm rule (errors, DLQ not empty, oldest message, dead-letter rate)."""
    from headwater.status import StatusError, judge, parse_since, project_name

    config = load_stack(stack, project_dir)
    try:
        since_s = parse_since(since)
        names = [config.pipeline(n).name for n in pipeline] if pipeline else \
            [p.name for p in config.pipelines]
    except (ValueError, KeyError) as exc:
        raise fail(exc.args[0]) from None
    try:
        if config.cloud == "local":
            from headwater.status.local import read_local

            rows = read_local(names, warehouse, root, since_s)
        elif config.cloud == "aws":
            from headwater.status.aws import read_aws

            rows = read_aws(names, _stack_outputs(stack, project_dir, outputs),
                            project_name(project_dir), stack, since_s, region=config.region)
        elif config.cloud == "gcp":
            from headwater.status.gcp import read_gcp

            rows = read_gcp(names, _stack_outputs(stack, project_dir, outputs),
                            project_name(project_dir), stack, since_s)
        elif config.cloud == "azure":
            from headwater.status.azure import read_azure

            rows = read_azure(names, _stack_outputs(stack, project_dir, outputs),
                              project_name(project_dir), stack, since_s)
        else:  # every cloud the spec allows has a reader above
            raise StatusError(f"no status reader for cloud {config.cloud!r}")
    except StatusError as exc:
        raise fail(str(exc)) from None
    for row in rows:
        judge(row, config.alerts)
    if as_json:
        from dataclasses import asdict

        sys.stdout.write(json.dumps({"stack": stack, "cloud": config.cloud, "since": since,
                                     "healthy": all(r.healthy for r in rows),
                                     "pipelines": [asdict(r) for r in rows]}, indent=2) + "\n")
    else:
        console.print(status_table(rows, f"stack {stack} ({config.cloud}), last {since}"))
        for r in rows:
            if r.last_error:
                where = f" (object {r.last_error_key})" if r.last_error_key else ""
                console.print(f"[bold]last error[/] {escape(f'{r.pipeline}: {r.last_error}{where}')}",
                              highlight=False, soft_wrap=True)
            for note in r.notes:
                err.print(f"[bold]note:[/] {escape(f'{r.pipeline}: {note}')}", highlight=False,
                          soft_wrap=True)
            for problem in r.problems:
                err.print(f"[bold red]unhealthy:[/] {escape(f'{r.pipeline}: {problem}')}",
                          highlight=False, soft_wrap=True)
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


def _stack_outputs(stack: str, project_dir: Path, path: Path | None) -> dict:
    import subprocess

    from headwater.status import StatusError

    if path is not None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StatusError(f"--outputs {path}: {exc}") from None
    try:
        done = subprocess.run(["pulumi", "stack", "output", "--json", "--stack", stack],
                              cwd=project_dir, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StatusError(f"cannot read the stack's outputs with `pulumi stack output`: {exc}; "
                          "pass --outputs FILE (that command's JSON)") from None
    if done.returncode != 0:
        raise StatusError(f"`pulumi stack output --json --stack {stack}` failed: "
                          f"{done.stderr.strip() or done.stdout.strip()}; deploy the stack "
                          "first, or pass --outputs FILE")
    return json.loads(done.stdout or "{}")


def status_table(rows, title: str) -> Table:  # rows: list[PipelineStatus]
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    def age(v: float | None) -> str:
        return "-" if v is None else (f"{v:.0f}s" if v < 120 else f"{v / 60:.0f}m")

    # two-line headers: the table fits an 80-column terminal; the last errors follow it
    table = Table(title=escape(title), box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                  collapse_padding=True)
    for col in ("pipeline", "health", "objects", "records\nin", "written", "dead-\nlettered",
                "queue", "DLQ", "oldest\nwaiting"):
        table.add_column(col, justify="left" if col in ("pipeline", "health") else "right",
                         no_wrap=True)
    for r in rows:
        health = "[green]ok[/]" if r.healthy else "[bold red]alarm[/]"
        table.add_row(escape(r.pipeline), health, num(r.objects), num(r.records_in),
                      num(r.written), num(r.dead_lettered), num(r.queue_depth),
                      num(r.dlq_depth), age(r.oldest_age_s))
    return table


def _day(value: str | None, option: str) -> Any:
    import datetime as dt

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


@app.command(cls=_Command)
def backfill(
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", metavar="NAME",
                                          help="the pipeline to backfill")],
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    root: Annotated[str, typer.Option(
        "--root", metavar="URL", help="the bucket: a folder, file://, s3a://, gs:// or abfss:// "
        "URL (keys are paths relative to it)")] = "data",
    since: Annotated[str | None, typer.Option(
        "--since", metavar="DATE", help="first day (UTC) of object arrival to include")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="DATE", help="last day (UTC) of object arrival to include")] = None,
    master: Annotated[str | None, typer.Option(
        "--master", metavar="URL", help="Spark master: local[*] (default), spark://..., yarn")
    ] = None,
    output: Annotated[str, typer.Option(
        "--output", metavar="PATH", help="Parquet goes to PATH/<table>/, dead-letters to "
        "PATH/deadletter/<pipeline>/")] = ".headwater/backfill",
    lookup: Annotated[str | None, typer.Option(
        "--lookup", metavar="URL", help="folder of lookup tables (default ROOT/lookup)")] = None,
    artifacts: Annotated[Path, typer.Option(
        "--artifacts", metavar="DIR", help="where the Spark artifact is built")] = Path("dist/spark"),
    python: Annotated[str | None, typer.Option(
        "--python", metavar="X.Y", help="the executors' Python (default: this one)")] = None,
    package_only: Annotated[bool, typer.Option(
        "--package-only", help="only build the artifact and its spark-submit entry "
        "(backfill_main.py) into --artifacts, for a managed Spark service")] = False,
) -> None:
    """Reprocess a pipeline's raw objects on Spark: the same chain and plugins as its
    functions, into Parquet partitioned as the sink is; re-running a range replaces it."""
    from headwater.backfill import BackfillError, spark_session
    from headwater.backfill import backfill as run_backfill
    from headwater.packaging import PackagingError

    config = load_stack(stack, project_dir)
    first, last = _day(since, "--since"), _day(until, "--until")
    try:
        config.pipeline(pipeline)
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    bucket = root if "://" in root else str(Path(root))
    if package_only:
        from headwater.backfill import build_spark_artifact

        try:
            artifact = build_spark_artifact(config, pipeline, artifacts, python=python)
        except PackagingError as exc:
            raise fail(str(exc)) from None
        import zipfile

        entry = artifacts / "backfill_main.py"
        with zipfile.ZipFile(artifact.path) as zf:
            entry.write_bytes(zf.read("backfill_main.py"))
        console.print(f"artifact: {artifact.path}  sha256 {artifact.sha256}\nentry: {entry}\n"
                      f"spark-submit --archives {artifact.path}#headwater {entry} "
                      "--root URL --output URL [--since DATE] [--until DATE]",
                      highlight=False, markup=False, soft_wrap=True)
        return
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise fail("pyspark is not installed: pip install 'headwater[spark]'") from None
    try:
        with err.status("starting Spark", spinner="dots"):
            spark = spark_session(master)
        report, artifact = run_backfill(config, pipeline, root=bucket, output=output,
                                        spark=spark, since=first, until=last, lookup=lookup,
                                        artifacts=artifacts, python=python)
    except (BackfillError, PackagingError) as exc:
        raise fail(str(exc)) from None
    console.print(backfill_table(report))
    console.print(f"artifact: {artifact.path}  sha256 {artifact.sha256}", highlight=False,
                  markup=False, soft_wrap=True)
    console.print(f"table: {report.table_path}  dead-letters: {report.deadletter_path}",
                  highlight=False, markup=False, soft_wrap=True)
    if report.removed:
        console.print(f"removed {len(report.removed)} in-range partition(s) this run no longer "
                      "writes", highlight=False, markup=False)


def backfill_table(report) -> Table:  # report: BackfillReport
    from rich import box

    table = Table(title="headwater backfill", box=box.SIMPLE_HEAD, padding=(0, 0),
                  pad_edge=False, collapse_padding=True)
    cols = ("pipeline", "objects", "skipped", "records\nin", "written", "dropped",
            "dead-\nlettered", "parti-\ntions", "secs")
    for col in cols:
        table.add_column(col, justify="left" if col == "pipeline" else "right", no_wrap=True)
    c = report.counters
    table.add_row(escape(report.pipeline), str(report.objects), str(report.skipped),
                  str(c.received), str(c.written), str(c.dropped),
                  f"[yellow]{c.dead_lettered}[/]" if c.dead_lettered else "0",
                  str(len(report.partitions)), f"{report.seconds:.1f}")
    return table


def main() -> None:
    app()


if __name__ == "__main__":
    main()
