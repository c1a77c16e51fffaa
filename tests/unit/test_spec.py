"""The pipeline spec: errors that point at config paths, defaults, and the example stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.spec import PipelineSpec, SpecError, StackConfig, load_stack_file, parse_stack

ROOT = Path(__file__).resolve().parents[2]


def pipeline(**over):
    p = {"name": "orders", "source": {"prefix": "raw/orders/"}, "sink": {"table": "orders"}}
    p.update(over)
    return p


def errors_of(config, source=""):
    with pytest.raises(SpecError) as err:
        parse_stack(config, source)
    return err.value


def test_a_minimal_pipeline_gets_documented_defaults():
    stack = parse_stack({"headwater:pipelines": [pipeline()]})
    assert stack.cloud == "local"
    p = stack.pipeline("orders")
    assert (p.source.format, p.source.compression, p.source.csv_delimiter) == ("ndjson", "auto",
                                                                               ",")
    assert (p.sink.partition, p.deadletter.prefix, p.retention_days) == ("day", "deadletter/", 30)
    assert p.limits.batch_size == 100 and p.limits.max_attempts == 5
    assert p.transforms == []


def test_missing_sink_table_points_at_its_path():
    err = errors_of({"headwater:pipelines": [pipeline(sink={})]}, "Pulumi.dev.yaml")
    assert err.errors == ["headwater:pipelines[0].sink.table: Field required"]
    assert str(err) == ("invalid headwater config in Pulumi.dev.yaml:\n"
                        "  headwater:pipelines[0].sink.table: Field required")


def test_every_problem_is_reported_with_its_path():
    bad = pipeline(name="Orders!", source={"prefix": "/raw/"}, sink={"table": "1x"},
                   transforms=[{"use": "cents"}, {"use": "", "with": {}}, {"use": "x", "opt": 1}],
                   limits={"max_concurrency": 1, "timeout_s": 901})
    err = errors_of({"headwater:cloud": "ibm", "headwater:pipelines": [pipeline(), bad]})
    assert err.errors == [
        "headwater:cloud: Input should be 'aws', 'gcp', 'azure' or 'local'",  # no near miss
        "headwater:pipelines[1].name: must be lower-case letters, digits, '-' or '_', start with "
        "a letter, at most 40 characters (it becomes part of cloud resource names)",
        "headwater:pipelines[1].source.prefix: must not start with '/' (object keys have no "
        "leading slash)",
        "headwater:pipelines[1].transforms[1].use: String should have at least 1 character",
        "headwater:pipelines[1].transforms[2].opt: unknown key (allowed here: use, with)",
        "headwater:pipelines[1].sink.table: must be letters, digits and '_' and start with a "
        "letter or '_'",
        "headwater:pipelines[1].limits.max_concurrency: Input should be greater than or equal "
        "to 2",
        "headwater:pipelines[1].limits.timeout_s: Input should be less than or equal to 900",
    ]


def test_with_is_reported_under_its_config_name():
    err = errors_of({"headwater:pipelines": [pipeline(transforms=[{"use": "a", "with": 3}])]})
    assert err.errors == ["headwater:pipelines[0].transforms[0].with: "
                          "Input should be a valid dictionary"]


def test_duplicate_pipeline_names_are_refused():
    err = errors_of({"headwater:pipelines": [pipeline(), pipeline(source={"prefix": "b/"}),
                                             pipeline(name="other")]})
    assert err.errors == ["headwater:pipelines: pipeline names must be unique; repeated: orders"]


def test_no_pipelines_at_all():
    assert errors_of({}).errors == ["headwater:pipelines: Field required"]
    assert errors_of({"headwater:pipelines": []}).errors == [
        "headwater:pipelines: List should have at least 1 item after validation, not 0"]


def test_keys_with_or_without_namespace_and_aws_region():
    stack = parse_stack({"pipelines": [pipeline()], "headwater:cloud": "aws",
                         "aws:region": "eu-central-1", "gcp:project": "ignored"})
    assert (stack.cloud, stack.region) == ("aws", "eu-central-1")
    explicit = parse_stack({"headwater:pipelines": [pipeline()], "headwater:region": "us-east-1",
                            "aws:region": "eu-central-1"})
    assert explicit.region == "us-east-1"


def test_unknown_stack_key_is_refused_with_the_key_it_resembles():
    assert errors_of({"headwater:pipelines": [pipeline()], "headwater:colud": "aws"}).errors == [
        "headwater:colud: unknown key; did you mean 'cloud'? (allowed here: alarm_email, "
        "alerts, arch, cloud, kms_key, layers, pipelines, python, region, tracing)"]


def test_a_new_users_typos_name_the_key_or_choice_they_resemble():
    p = pipeline()
    typos = {**p, "nmae": p["name"], "source": {**p["source"], "fromat": "ndjson"},
             "sink": {**p["sink"], "partiton": "day"}}
    del typos["name"]
    errors = errors_of({"headwater:pipelines": [typos], "headwater:cloud": "locl"}).errors
    # the key the misspelling stands for is not also reported as missing
    assert not any("Field required" in e for e in errors)
    assert sorted(e.split(" (allowed")[0] for e in errors) == [
        "headwater:cloud: Input should be 'aws', 'gcp', 'azure' or 'local'; "
        "did you mean 'local'?",
        "headwater:pipelines[0].nmae: unknown key; did you mean 'name'?",
        "headwater:pipelines[0].sink.partiton: unknown key; did you mean 'partition'?",
        "headwater:pipelines[0].source.fromat: unknown key; did you mean 'format'?",
    ]
    far = pipeline(sink={**p["sink"], "colour": "red"})
    (error,) = errors_of({"headwater:pipelines": [far]}).errors
    assert error == ("headwater:pipelines[0].sink.colour: unknown key (allowed here: columns, "
                     "existing, partition, table)")


def test_pipeline_lookup_by_name():
    stack = parse_stack({"headwater:pipelines": [pipeline(), pipeline(name="b")]})
    assert stack.pipeline("b").name == "b"
    with pytest.raises(KeyError, match="no pipeline 'zz'; have: orders, b"):
        stack.pipeline("zz")


def test_lookup_tables_come_from_with_table():
    p = PipelineSpec.model_validate(pipeline(transforms=[
        {"use": "enrich", "with": {"table": "users", "key": "user_id"}},
        {"use": "cents"},
        {"use": "geo", "with": {"table": "countries"}},
        {"use": "enrich", "with": {"table": "users", "key": "other"}},
    ]))
    assert p.lookup_tables() == ["users", "countries"]
    # the first step naming a table with a key gives it; a table never keyed has None
    assert p.lookup_keys() == {"users": "user_id", "countries": None}
    q = PipelineSpec.model_validate(pipeline(transforms=[
        {"use": "geo", "with": {"table": "users"}},
        {"use": "enrich", "with": {"table": "users", "key": "user_id"}},
    ]))
    assert q.lookup_keys() == {"users": "user_id"}


def test_specs_are_frozen():
    p = PipelineSpec.model_validate(pipeline())
    with pytest.raises(Exception, match="frozen"):
        p.name = "x"  # type: ignore[misc]


def test_load_the_local_example_stack():
    stack = load_stack_file(ROOT / "Pulumi.local.yaml")
    assert isinstance(stack, StackConfig) and stack.cloud == "local"
    assert [p.name for p in stack.pipelines] == ["orders", "signups"]
    orders = stack.pipeline("orders")
    assert orders.source.format == "auto" and orders.source.prefix == "raw/orders/"
    assert [s.use for s in orders.transforms] == ["schema", "cents", "normalize", "enrich",
                                                  "require"]
    assert orders.transforms[1].with_ == {"source": "value", "target": "value_cents"}
    assert orders.lookup_tables() == ["users"]
    assert orders.sink.columns["value_cents"] == "bigint"
    assert stack.pipeline("signups").secrets == {"email-key": "headwater/email-key"}


def test_load_the_aws_example_stack():
    stack = load_stack_file(ROOT / "Pulumi.aws.yaml")
    assert (stack.cloud, stack.region, stack.python, stack.arch) == ("aws", "eu-west-1", "3.12",
                                                                     "arm64")
    local = load_stack_file(ROOT / "Pulumi.local.yaml")
    assert stack.pipelines == local.pipelines  # the same pipelines, another cloud


def test_load_stack_file_decodes_json_strings_and_drops_secure_values(tmp_path):
    f = tmp_path / "Pulumi.dev.yaml"
    f.write_text(
        "config:\n"
        "  headwater:cloud: aws\n"
        "  headwater:alarm_email:\n"
        "    secure: AAABAJ0x\n"
        '  headwater:pipelines: \'[{"name": "a", "source": {"prefix": "in/"}, '
        '"sink": {"table": "t"}}]\'\n'
    )
    stack = load_stack_file(f)
    assert stack.pipelines[0].name == "a" and stack.alarm_email is None


def test_load_stack_file_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match=r"stack file .*Pulumi.nope.yaml not found"):
        load_stack_file(tmp_path / "Pulumi.nope.yaml")
    bad_yaml = tmp_path / "Pulumi.bad.yaml"
    bad_yaml.write_text("config: [unclosed\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_stack_file(bad_yaml)
    not_map = tmp_path / "Pulumi.list.yaml"
    not_map.write_text("config: [1, 2]\n")
    with pytest.raises(SpecError, match="'config' must be a mapping"):
        load_stack_file(not_map)
    bad = tmp_path / "Pulumi.x.yaml"
    bad.write_text("config:\n  headwater:pipelines:\n    - name: a\n      source: {prefix: p/}\n"
                   "      sink: {}\n")
    with pytest.raises(SpecError) as err:
        load_stack_file(bad)
    assert str(err.value) == (f"invalid headwater config in {bad}:\n"
                              "  headwater:pipelines[0].sink.table: Field required")


def test_runtimes_spec_is_never_needed_by_function_code():
    """The engine, manifest and decoders import without pydantic's models being loaded."""
    import subprocess
    import sys

    code = ("import sys; import runtimes.core.engine, runtimes.core.manifest, runtimes.core.formats, "
            "headwater.testing.doubles, runtimes.core.deadletter; "
            "assert 'headwater.spec' not in sys.modules and 'pydantic' not in sys.modules, "
            "sorted(m for m in sys.modules if 'pydantic' in m or m == 'headwater.spec')")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
