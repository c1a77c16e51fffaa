"""A plugin written the way the README offers: precise errors from headwater's plugin API."""

from headwater import Retryable, SettingsError


def make(*, field: str = "status", allowed: tuple[str, ...] = ("ok",)):
    if not allowed:
        raise SettingsError("allowed", "must list at least one value")

    def strict(record, ctx):
        if record.get(field) == "later":
            raise Retryable("the upstream system asked to try again")
        if record.get(field) not in allowed:
            raise ValueError(f"{field}={record.get(field)!r} is not one of {list(allowed)}")
        return record

    return strict
