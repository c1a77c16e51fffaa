"""The ``pseudonymize`` built-in: keyed, deterministic hashing."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from transforms.builtins.pseudonymize import make
from transforms.contract import Context, SettingsError

KEY = "s3cret"


class Secrets:
    def __init__(self, value=KEY):
        self.value = value
        self.calls: list[str] = []

    def __call__(self, name: str) -> str:
        self.calls.append(name)
        return self.value


def ctx(secrets=None):
    return Context(pipeline="t", secret=secrets or Secrets())


def expected(text: str, algo=hashlib.sha256, key=KEY) -> str:
    return hmac.new(key.encode(), text.encode(), algo).hexdigest()


def test_hashes_listed_fields_with_hmac_sha256():
    out = make(fields=["email"])({"email": "ann@example.org", "n": 1}, ctx())
    assert out == {"email": expected("ann@example.org"), "n": 1}
    assert len(out["email"]) == 64


def test_deterministic_across_records_and_instances():
    a = make(fields=["u"])({"u": "x"}, ctx())["u"]
    b = make(fields=["u"])({"u": "x"}, ctx())["u"]
    assert a == b
    assert make(fields=["u"])({"u": "y"}, ctx())["u"] != a


def test_other_key_gives_other_digest():
    a = make(fields=["u"])({"u": "x"}, ctx(Secrets("k1")))["u"]
    b = make(fields=["u"])({"u": "x"}, ctx(Secrets("k2")))["u"]
    assert a != b


@pytest.mark.parametrize(
    ("algorithm", "algo", "size"),
    [("sha256", hashlib.sha256, 64), ("sha512", hashlib.sha512, 128),
     ("blake2b", hashlib.blake2b, 128)],
)
def test_algorithms(algorithm, algo, size):
    out = make(fields=["u"], algorithm=algorithm)({"u": "x"}, ctx())["u"]
    assert out == expected("x", algo)
    assert len(out) == size


def test_prefix():
    out = make(fields=["u"], prefix="h:")({"u": "x"}, ctx())["u"]
    assert out == "h:" + expected("x")


def test_none_stays_none_and_missing_is_ignored():
    out = make(fields=["a", "b"])({"a": None, "c": 1}, ctx())
    assert out == {"a": None, "c": 1}


def test_non_strings_hash_their_json_text():
    f = make(fields=["a", "b", "c", "d"])
    out = f({"a": 7, "b": True, "c": {"y": 1, "x": [1, 2]}, "d": 1.5}, ctx())
    assert out["a"] == expected("7")
    assert out["b"] == expected("true")
    assert out["c"] == expected('{"x":[1,2],"y":1}')
    assert out["d"] == expected("1.5")


def test_secret_fetched_once_by_name_lazily():
    secrets = Secrets()
    f = make(fields=["u"], secret="pii-key")
    assert secrets.calls == []
    c = ctx(secrets)
    for i in range(5):
        f({"u": str(i)}, c)
    assert secrets.calls == ["pii-key"]


def test_default_secret_name():
    secrets = Secrets()
    make(fields=["u"])({"u": "x"}, ctx(secrets))
    assert secrets.calls == ["pseudonymize-key"]


def test_missing_secret_store_raises_and_is_retried_next_record():
    f = make(fields=["u"])
    with pytest.raises(LookupError, match="pseudonymize-key"):
        f({"u": "x"}, Context(pipeline="t"))
    assert f({"u": "x"}, ctx())["u"] == expected("x")


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match="secret 'pseudonymize-key' is empty"):
        make(fields=["u"])({"u": "x"}, ctx(Secrets("")))


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"fields": []}, "fields"),
        ({"fields": "email"}, "fields"),
        ({"fields": ["a"], "secret": ""}, "secret"),
        ({"fields": ["a"], "secret": 1}, "secret"),
        ({"fields": ["a"], "algorithm": "md5"}, "algorithm"),
        ({"fields": ["a"], "prefix": None}, "prefix"),
    ],
)
def test_settings(settings, setting):
    with pytest.raises(SettingsError) as info:
        make(**settings)
    assert info.value.setting == setting
