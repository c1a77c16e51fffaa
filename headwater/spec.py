"""The pipeline spec: stack config ``headwater:*`` parsed into validated models.

One source of truth for ``pulumi up``, ``headwater run`` and ``headwater package``.
Errors point at the config path, e.g.
``headwater:pipelines[0].sink.table: Field required``.

This module uses pydantic and runs at plan / package time only. A deployed function
reads the plain-JSON manifest (:mod:`runtimes.core.manifest`) and never imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "REGION_KEYS",
    "Alerts",
    "Cloud",
    "Deadletter",
    "Limits",
    "PipelineSpec",
    "SinkSpec",
    "SourceSpec",
    "SpecError",
    "StackConfig",
    "StepSpec",
    "load_stack_file",
    "parse_stack",
]

Cloud = Literal["aws", "gcp", "azure", "local"]
# the provider config key that holds a cloud's region, read when headwater:region is unset
REGION_KEYS = {"aws": "aws:region", "gcp": "gcp:region", "azure": "azure-native:location"}
Format = Literal["auto", "json", "ndjson", "csv", "parquet"]  # auto: by key suffix
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


# sink.columns types, the same names in every warehouse (Glue/Athena, BigQuery, ADX, DuckDB)
COLUMN_TYPES = ("string", "int", "bigint", "double", "boolean", "timestamp", "date")
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")


def column_type_ok(typ: str) -> bool:
    t = typ.strip().lower()
    if t in COLUMN_TYPES:
        return True
    m = _DECIMAL.match(t)
    return bool(m) and 1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1))


class SpecError(ValueError):
    """Bad stack config. ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, errors: list[str], source: str = "") -> None:
        self.errors = errors
        head = f"invalid headwater config{f' in {source}' if source else ''}"
        super().__init__(head + ":\n  " + "\n  ".join(errors))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SourceSpec(_Model):
    prefix: str = Field(min_length=1, description="object key prefix that feeds this pipeline")
    suffix: str = ""
    format: Format = "ndjson"
    compression: Literal["auto", "gzip", "none"] = "auto"
    bucket: str | None = Field(None, description="an existing bucket / container to read from")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    notifications: Literal["s3", "eventbridge"] | None = Field(
        None, description="AWS: how new objects reach the queue. 's3': the bucket's "
        "notification configuration (which headwater then owns whole); 'eventbridge': an "
        "EventBridge rule, leaving the bucket's notification configuration alone. Default: "
        "'eventbridge' for an existing bucket (source.bucket), 's3' for one headwater creates")

    @property
    def notify_by(self) -> str:
        """The notification path in effect (``notifications`` or its default)."""
        return self.notifications or ("eventbridge" if self.bucket else "s3")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v.startswith("/"):
            raise ValueError("must not start with '/' (object keys have no leading slash)")
        return v


class StepSpec(_Model):
    use: str = Field(min_length=1)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class SinkSpec(_Model):
    table: str
    partition: Literal["day", "hour", "none"] = "day"
    existing: str | None = None
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="column -> type (string, int, bigint, double, boolean, timestamp, date, "
        "decimal(p,s)); needed by warehouses with a fixed schema (Glue/Parquet, BigQuery)",
    )

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        for name, typ in v.items():
            if name.startswith("_headwater"):
                raise ValueError(f"column {name!r}: names starting with _headwater are "
                                 "headwater's own (the row id and bookkeeping)")
            if not column_type_ok(typ):
                raise ValueError(f"column {name!r}: unknown type {typ!r}; use one of "
                                 f"{', '.join(COLUMN_TYPES)} or decimal(p,s) with p <= 38")
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        if not TABLE.match(v):
            raise ValueError("must be letters, digits and '_' and start with a letter or '_'")
        return v


class Deadletter(_Model):
    prefix: str = "deadletter/"
    bucket: str | None = None


class Limits(_Model):
    batch_size: int = Field(100, ge=1, le=10_000)
    batching_window_s: int = Field(5, ge=0, le=300)
    max_concurrency: int = Field(10, ge=2, le=1000)
    timeout_s: int = Field(60, ge=3, le=900)
    memory_mb: int = Field(512, ge=128, le=10_240)
    max_receive_count: int = Field(3, ge=1, le=1000)
    sink_batch: int = Field(500, ge=1, le=10_000)
    max_attempts: int = Field(5, ge=1, le=20)


class PipelineSpec(_Model):
    name: str
    source: SourceSpec
    transforms: list[StepSpec] = Field(default_factory=list)
    sink: SinkSpec
    deadletter: Deadletter = Field(default_factory=Deadletter)
    limits: Limits = Field(default_factory=Limits)
    retention_days: int = Field(30, ge=1, le=3650)
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="logical secret name (as a transform asks ctx.secret) -> the cloud secret "
        "store's id (AWS Secrets Manager ARN or name ...); locally HEADWATER_SECRET_<NAME>",
    )
    lookups: dict[str, str] = Field(
        default_factory=dict,
        description="lookup table (as named by a transform) -> an existing table to read "
        "instead of creating one (DynamoDB table name ...)",
    )
    overrides: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("must be lower-case letters, digits, '-' or '_', start with a letter, "
                             "at most 40 characters (it becomes part of cloud resource names)")
        return v

    def lookup_keys(self) -> dict[str, str | None]:
        """Lookup table -> its key field, for every table named by ``with: {table: ...}``
        of a step (``enrich`` and plugins), in chain order. The key is the ``key`` setting
        of the first step naming the table that has one (``enrich`` looks rows up by the
        record's ``key`` field), or None."""
        keys: dict[str, str | None] = {}
        for step in self.transforms:
            table, key = step.with_.get("table"), step.with_.get("key")
            if not isinstance(table, str):
                continue
            if keys.get(table) is None:
                keys[table] = key if isinstance(key, str) and key else None
        return keys

    def lookup_tables(self) -> list[str]:
        """Tables named by ``with: {table: ...}`` of lookup steps, in chain order."""
        return list(self.lookup_keys())


class Alerts(_Model):
    """Where alarms go and when they fire (``headwater:alerts``); the same rules on every
    cloud (README, "Observability")."""

    email: str | None = Field(None, description="an address subscribed to the alarms")
    webhook: str | None = Field(
        None, description="an https URL the alarms are posted to (SNS https subscription, "
        "Cloud Monitoring webhook channel, Action Group webhook receiver)")
    target: str | None = Field(
        None, description="an existing target of the stack's cloud: an SNS topic ARN (AWS), "
        "a Pub/Sub topic 'projects/<p>/topics/<t>' (GCP), an Action Group resource id (Azure)")
    deadletter_rate: float = Field(
        0.01, gt=0, le=1, description="alarm when dead-lettered / records in, over 5 minutes, "
        "is above this fraction")
    oldest_message_minutes: int = Field(
        15, ge=1, le=1440, description="alarm when the oldest waiting notification is older")

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("must be an https:// URL (alarms carry pipeline names and "
                             "object keys: never over plain http)")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v):
            raise ValueError(f"{v!r} is not an e-mail address")
        return v


class StackConfig(_Model):
    cloud: Cloud = "local"
    pipelines: list[PipelineSpec] = Field(min_length=1)
    python: str = Field("3.12", pattern=r"^3\.(1[0-9])$")
    arch: Literal["arm64", "x86_64"] = "arm64"
    # "shared": pipelines that carry a heavy distribution (pyarrow) share one layer
    # holding it (Lambda layers); "none": every function artifact carries its own copy
    layers: Literal["none", "shared"] = "none"
    region: str | None = None
    alarm_email: str | None = None
    alerts: Alerts = Field(default_factory=Alerts)
    tracing: bool = Field(True, description="Lambda active tracing (X-Ray), Cloud Trace log "
                          "correlation, Application Insights dependency tracking")
    kms_key: str | None = None

    # a field validator, so the error points at headwater:pipelines (a model validator's
    # error has no location and printed as "headwater:: ...")
    @field_validator("pipelines")
    @classmethod
    def _unique(cls, pipelines: list[PipelineSpec]) -> list[PipelineSpec]:
        names = [p.name for p in pipelines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pipeline names must be unique; repeated: {', '.join(dupes)}")
        return pipelines

    @property
    def alert_emails(self) -> list[str]:
        """``alarm_email`` and ``alerts.email``, each once."""
        return list(dict.fromkeys(e for e in (self.alarm_email, self.alerts.email) if e))

    @property
    def alerting(self) -> bool:
        """Whether the alarms notify anyone."""
        return bool(self.alert_emails or self.alerts.webhook or self.alerts.target)

    def pipeline(self, name: str) -> PipelineSpec:
        for p in self.pipelines:
            if p.name == name:
                return p
        raise KeyError(f"no pipeline {name!r}; have: {', '.join(p.name for p in self.pipelines)}")


def _path(loc: tuple[Any, ...]) -> str:
    out = "headwater:"
    first = True
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = "with" if part == "with_" else part
            out += ("" if first else ".") + str(part)
        first = False
    return out


def parse_stack(config: Mapping[str, Any], source: str = "") -> StackConfig:
    """Parse ``headwater:*`` keys (with or without the ``headwater:`` prefix)."""
    raw: dict[str, Any] = {}
    for key, value in config.items():
        name = key.split(":", 1)[1] if key.startswith("headwater:") else key
        if ":" in name:  # another namespace: only the providers' region keys matter
            continue
        raw[name] = value
    cloud = raw.get("cloud", "local")
    if "region" not in raw and isinstance(cloud, str) and REGION_KEYS.get(cloud) in config:
        raw["region"] = config[REGION_KEYS[cloud]]
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        errors = exc.errors()
        unknown = {tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"}
        for err in errors:
            loc = tuple(err["loc"])
            msg = ("unknown key" if err["type"] == "extra_forbidden"
                   else err["msg"].removeprefix("Value error, "))
            if err["type"] == "missing" and any(u[:-1] == loc[:-1] for u in unknown):
                continue  # said with the misspelt key beside it: "did you mean ..."
            lines.append(f"{_path(loc)}: {msg}{_did_you_mean(err)}")
        raise SpecError(lines, source) from None


def _did_you_mean(err: Mapping[str, Any]) -> str:
    """A hint for a misspelt key (the keys its place allows) or choice (the choices)."""
    import difflib

    loc, given = tuple(err["loc"]), err.get("input")
    if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
        model, given = _model_at(loc[:-1]), loc[-1]
        if model is None:
            return ""
        allowed = sorted(f.alias or n for n, f in model.model_fields.items())
        close = difflib.get_close_matches(given, allowed, n=1, cutoff=0.7)
        return (f"; did you mean {close[0]!r}?" if close else "") + \
            f" (allowed here: {', '.join(allowed)})"
    if err["type"] == "literal_error" and isinstance(given, str):
        choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
        return f"; did you mean {close[0]!r}?" if close else ""
    return ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (from :class:`StackConfig`)."""
    model: type[BaseModel] | None = StackConfig
    for part in loc:
        if isinstance(part, int) or model is None:
            continue  # a list's item: the same model
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def load_stack_file(path: str | Path) -> StackConfig:
    """Read a ``Pulumi.<stack>.yaml`` and parse its ``config:`` section.

    Values stored as JSON strings (``pulumi config set --path`` writes structured values,
    but ``pulumi config set k '[...]'`` stores a string) are decoded.
    """
    import json

    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SpecError([f"stack file {path} not found"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{path} is not valid YAML: {exc}"]) from None
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise SpecError([f"{path}: 'config' must be a mapping"])
    for key, value in list(config.items()):
        if isinstance(value, str) and value[:1] in "[{":
            try:
                config[key] = json.loads(value)
            except ValueError:
                pass
        elif isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = None
    return parse_stack(config, str(path))
