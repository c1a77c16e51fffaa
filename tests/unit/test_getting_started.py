"""A new user's first hour: the README's local commands work as written on a fresh clone,
``make demo`` installs what the demo needs only, the build backend warns about nothing,
``headwater --version``, help without type placeholders, one default ``--stack``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import headwater
from headwater.cli import app

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def shell_lines(section: str) -> list[str]:
    """The commands of the section's first ```sh block, comments removed."""
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the section has no ```sh block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_run_it_locally_commands_work_as_written(tmp_path, example_plugin_dir):
    """Each line of the README's block, run from a copy of the repository's files: `make
    install` is stood in for by this interpreter (the test environment has headwater);
    `.venv/bin/pip install ./examples/plugins/headwater-geo` by the installed example
    plugin; every other line runs as written."""
    lines = shell_lines(readme_section("Run it locally"))
    assert lines[0] == "make install"
    repo = tmp_path / "clone"
    repo.mkdir()
    for name in ("Pulumi.local.yaml", "Pulumi.aws.yaml", "Pulumi.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "examples", repo / "examples",
                    ignore=shutil.ignore_patterns("deadletter", "build", "*.egg-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(example_plugin_dir)]),
           "COLUMNS": "120"}
    ran = 0
    for line in lines[1:]:
        words = shlex.split(line)
        if words[0] == "export":
            key, _, value = words[1].partition("=")
            env[key] = value
            continue
        if words[:3] == [".venv/bin/pip", "install", "./examples/plugins/headwater-geo"]:
            assert (repo / words[2]).is_dir()
            continue
        assert words[0] == ".venv/bin/headwater", f"runs as written after make install: {line}"
        if "--root" in words:
            assert (repo / words[words.index("--root") + 1]).is_dir()
        done = subprocess.run([sys.executable, "-m", "headwater", *words[1:]], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        ran += 1
    assert ran >= 2  # validate and run at least
    assert (repo / ".headwater").is_dir()


def make_commands(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout


def test_make_demo_installs_what_the_demo_needs_not_the_dev_extra():
    demo = make_commands("demo")
    assert "-e '.[parquet]'" in demo  # the example's Parquet object needs pyarrow
    assert "[dev" not in demo and "moto" not in demo and "pytest" not in demo
    assert "./examples/plugins/headwater-geo" in demo
    assert "-e '.[dev]'" in make_commands("test")


def test_the_build_backend_warns_about_nothing(tmp_path):
    """What pip runs to install headwater, with every warning made an error."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    for package in ("headwater", "transforms", "runtimes", "components"):
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "meta"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c",
         "import setuptools.build_meta as b, sys; b.prepare_metadata_for_build_wheel(sys.argv[1])",
         str(out)], cwd=src, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning" not in (done.stdout + done.stderr).lower()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]


def test_version():
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.output.strip() == f"headwater {version}" == f"headwater {headwater.__version__}"


COMMANDS = [[], ["run"], ["validate"], ["package"], ["transforms"], ["transforms", "list"],
            ["transforms", "new"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "headwater")
def test_help_has_no_type_placeholders(command):
    result = cli.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    placeholders = re.findall(r"<(?:bool|str|int|path|list\[[^\]]*\])>|\{name\}", result.output)
    assert placeholders == [], result.output
    assert "--help" in result.output


def test_run_help_names_what_each_option_takes():
    out = cli.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for option, metavar in [("--stack", "NAME"), ("--root", "DIR"), ("--warehouse", "FILE"),
                            ("--pipeline", "NAME")]:
        assert re.search(rf"{option}\b.*\b{metavar}\b", out), (option, out)


def test_every_command_has_the_same_default_stack():
    import typer.main

    group = typer.main.get_command(app)
    defaults = {}
    for name in ("run", "validate", "package"):
        (stack,) = [p for p in group.commands[name].params if p.name == "stack"]
        defaults[name] = stack.default
    assert set(defaults.values()) == {"local"}, defaults


def test_package_on_the_default_local_stack_says_what_to_do():
    result = cli.invoke(app, ["package", "--project-dir", str(ROOT)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "stack 'local' runs locally (headwater:cloud local)" in text
    assert "--stack aws" in text
