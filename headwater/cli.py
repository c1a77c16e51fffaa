"""The ``headwater`` command line: run, validate, plan, package, transforms list / new."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="headwater",
    help="Write a serverless data pipeline once; deploy it with Pulumi or run it locally.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
transforms_app = typer.Typer(help="List and scaffold transform plugins.", no_args_is_help=True)
app.add_typer(transforms_app, name="transforms")

console = Console()
err = Console(stderr=True)

StackOpt = Annotated[str, typer.Option("--stack", "-s", help="stack name: reads Pulumi.<stack>.yaml")]
ProjectOpt = Annotated[Path, typer.Option("--project-dir", help="folder holding Pulumi.<stack>.yaml")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def stack_file(stack: str, project_dir: Path) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load_stack(stack: str, project_dir: Path):  # -> StackConfig
    from headwater.spec import SpecError, load_stack_file

    try:
        return load_stack_file(stack_file(stack, project_dir))
    except SpecError as exc:
        raise fail(str(exc)) from None


@app.command()
def validate(stack: StackOpt = "local", project_dir: ProjectOpt = Path(".")) -> None:
    """Check the stack config, every transform's settings and the cloud's own rules (the
    checks `pulumi preview` runs first); touches no data and needs no credentials."""
    config = load_stack(stack, project_dir)
    _check_transforms(config)
    if config.cloud != "local":
        _check_cloud_rules(stack, project_dir)
    table = Table(title=f"stack {stack} ({config.cloud})")
    for col in ("pipeline", "source", "steps", "sink"):
        table.add_column(col)
    for p in config.pipelines:
        table.add_row(p.name, f"{p.source.prefix} ({p.source.format})",
                      " -> ".join(s.use for s in p.transforms) or "(none)", p.sink.table)
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


@app.command()
def plan(
    stack: Annotated[str, typer.Option("--stack", "-s", help="stack name: reads Pulumi.<stack>.yaml")],
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
    from rich.markup import escape
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


@transforms_app.command("list")
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
        doc = f"[red]{r['error']}[/]" if r["error"] else r["doc"]
        table.add_row(r["name"], r["distribution"], r["version"], r["target"], doc)
    console.print(table)


@transforms_app.command("new")
def transforms_new(
    name: Annotated[str, typer.Argument(help="transform name, e.g. mask_email (the `use:` name)")],
    directory: Annotated[Path, typer.Option(
        "--dir", help="folder to create headwater-<name>/ in")] = Path("."),
) -> None:
    """Scaffold an installable plugin package headwater-<name> with a test."""
    from headwater.scaffold import ScaffoldError, scaffold

    try:
        target = scaffold(name, directory)
    except ScaffoldError as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]created[/] {target}", highlight=False)
    console.print(f"  pip install -e {target}    then: headwater transforms list", highlight=False)


@app.command()
def run(
    stack: StackOpt = "local",
    project_dir: ProjectOpt = Path("."),
    root: Annotated[Path, typer.Option(
        "--root", help="folder standing in for the bucket (keys are paths relative to it)")
    ] = Path("data"),
    warehouse: Annotated[Path, typer.Option(
        "--warehouse", help="DuckDB file the sink tables and the ledger go to")
    ] = Path(".headwater/warehouse.duckdb"),
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", "-p", help="run only this pipeline (repeatable)")] = None,
    reprocess: Annotated[bool, typer.Option(
        "--reprocess", help="process objects already done too, replacing their earlier rows")
    ] = False,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="show a progress bar while running")] = True,
) -> None:
    """Run the stack's pipelines over the objects in --root, into a local DuckDB file."""
    from headwater.local import local_runner
    from headwater.report import RichProgress, summary_table

    config = load_stack(stack, project_dir)
    if not root.is_dir():
        raise fail(f"--root {root} is not a folder (it stands in for the bucket)")
    try:
        runner = local_runner(config, root, warehouse, pipelines=pipeline, reprocess=reprocess)
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
    console.print(summary_table(report))
    for e in report.errors:
        where = f"object {e.key!r}" if e.key else "could not start"
        err.print(f"[bold red]failed:[/] pipeline {e.pipeline!r}, {where}: {e.error}",
                  highlight=False, soft_wrap=True)
    console.print(f"warehouse: {warehouse}  dead-letters: {root / 'deadletter'}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def package(
    stack: StackOpt = "aws",
    project_dir: ProjectOpt = Path("."),
    out: Annotated[Path, typer.Option("--out", help="artifacts go to OUT/<stack>/")] = Path("dist"),
    wheelhouse: Annotated[Path | None, typer.Option(
        "--wheelhouse", help="wheel cache folder (default ~/.cache/headwater/wheels)")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="use only wheels already in the cache; never download")] = False,
    pipeline: Annotated[list[str] | None, typer.Option(
        "--pipeline", "-p", help="package only this pipeline (repeatable)")] = None,
) -> None:
    """Build each pipeline's function artifact for the stack's cloud (reproducible bytes)."""
    from headwater.packaging import PackagingError, build_stack
    from headwater.packaging.errors import human

    config = load_stack(stack, project_dir)
    target = out / stack
    try:
        with err.status("packaging", spinner="dots") as status:
            artifacts = build_stack(config, target, pipelines=pipeline, wheelhouse=wheelhouse,
                                    offline=offline,
                                    progress=lambda msg: status.update(f"packaging {msg}"))
    except PackagingError as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"stack {stack} ({config.cloud}, python {config.python}, {config.arch})")
    for col in ("pipeline", "artifact", "size", "sha256", "bytecode"):
        table.add_column(col, overflow="fold")
    for a in artifacts:
        table.add_row(a.pipeline, str(a.path), human(a.size), a.sha256,
                      f"Python {a.bytecode_python}" if a.bytecode else "none (see note)")
    console.print(table)
    for note in dict.fromkeys(a.bytecode_note for a in artifacts if a.bytecode_note):
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
