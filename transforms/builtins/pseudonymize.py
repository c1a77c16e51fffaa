"""Replace field values with a keyed hash (HMAC) so that they can be joined but not read.

Usage in a pipeline spec::

    - use: pseudonymize
      with: {fields: [email, phone], secret: pii-key, prefix: "h:"}

    {"email": "ann@example.org", "phone": null, "total": 3}
      ->  {"email": "h:5f0c...e1", "phone": null, "total": 3}

The hash is deterministic: the same value under the same key always gives the same hex
digest, in every pipeline and on every cloud, so joins and counts on the pseudonymized
column still work. It is keyed (HMAC), so without the secret nobody can confirm a guess.
Rotating the key changes every output: rows written before and after a rotation no longer
join. Keep the key as long as the data must join.

``null`` stays ``null``; a missing field is ignored. A string is hashed as its UTF-8 bytes,
any other value as its compact JSON text (so the number ``7`` and the string ``"7"`` hash
the same, which keeps joins working across sources that type an id differently).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from ..contract import Context
from . import _settings as s

__all__ = ["ALGORITHMS", "make"]

ALGORITHMS = ("sha256", "sha512", "blake2b")


def _payload(value: Any) -> bytes:
    if type(value) is str:
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    return text.encode("utf-8", "surrogatepass")


def make(*, fields: list[str], secret: str = "pseudonymize-key", algorithm: str = "sha256",
         prefix: str = ""):
    """Replace each listed field with the hex HMAC of its value under a secret key.

    Settings:

    - ``fields``: non-empty list of fields to pseudonymize.
    - ``secret`` (default ``pseudonymize-key``): the *name* of the secret holding the key,
      read through ``ctx.secret(name)`` on the first record and then kept in memory.
    - ``algorithm``: ``sha256`` (default, 64 hex characters), ``sha512`` or ``blake2b``
      (128 hex characters).
    - ``prefix`` (default ``""``): text put before each digest, e.g. ``"h:"``.

    Deterministic: same key, same value -> same digest, so joins still work; rotating the
    key breaks joins with data hashed under the old key.

    Example::

        - use: pseudonymize
          with: {fields: [user_id]}

        {"user_id": "u-42", "n": 1}  ->  {"user_id": "9c1e...7a", "n": 1}
    """
    names = tuple(s.names("fields", fields))
    secret_name = s.name("secret", secret)
    algo = s.choice("algorithm", algorithm, ALGORITHMS)
    prefix = s.text("prefix", prefix)
    keyed: list[Any] = []  # the HMAC object keyed with the secret, once fetched

    def _base(ctx: Context) -> Any:
        if keyed:
            return keyed[0]
        key = ctx.secret(secret_name)
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, (bytes, bytearray)) or not key:
            raise ValueError(f"secret {secret_name!r} is empty or not text")
        base = hmac.new(bytes(key), digestmod=algo)
        keyed.append(base)
        return base

    def pseudonymize(record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        base = keyed[0] if keyed else _base(ctx)
        for name in names:
            value = record.get(name)
            if value is not None:
                h = base.copy()
                h.update(_payload(value))
                record[name] = prefix + h.hexdigest()
        return record

    return pseudonymize
