"""The ``ctx.lookup`` (DynamoDB) and ``ctx.secret`` (Secrets Manager) ports on moto server."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from runtimes.aws import clients
from runtimes.aws.ports import DynamoLookup, SecretStore
from transforms.contract import Retryable

pytestmark = pytest.mark.e2e


@pytest.fixture
def users(aws: str) -> Any:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(TableName="users", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}])
    ddb.create_table(TableName="skus", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "sku", "AttributeType": "N"}],
                     KeySchema=[{"AttributeName": "sku", "KeyType": "HASH"}])
    for start in range(0, 300, 25):
        ddb.batch_write_item(RequestItems={"users": [
            {"PutRequest": {"Item": {"user_id": {"S": f"u{i}"}, "tier": {"S": "gold"},
                                     "score": {"N": str(i)}}}}
            for i in range(start, start + 25)]})
    ddb.put_item(TableName="skus", Item={"sku": {"N": "7"}, "name": {"S": "Lamp"},
                                          "price": {"N": "19.99"}})
    return ddb


class Withholding:
    """A thin proxy on the real DynamoDB client that moves ``n`` keys of the first
    ``times`` answers into ``UnprocessedKeys``, as DynamoDB does under throttling or the
    16 MB response limit (moto never does)."""

    def __init__(self, real: Any, n: int, times: int) -> None:
        self.real, self.n, self.times = real, n, times
        self.requests: list[int] = []

    def batch_get_item(self, RequestItems: dict) -> dict:
        (table, req), = RequestItems.items()
        self.requests.append(len(req["Keys"]))
        if len(self.requests) > self.times:
            return self.real.batch_get_item(RequestItems=RequestItems)
        keys, held = req["Keys"][self.n:], req["Keys"][:self.n]
        resp = (self.real.batch_get_item(RequestItems={table: {"Keys": keys}}) if keys
                else {"Responses": {table: []}})
        resp["UnprocessedKeys"] = {table: {"Keys": held}}
        return resp


def test_lookup_batches_100_keys_per_call_and_caches_rows_and_misses(users):
    lookup = DynamoLookup(clients.client("dynamodb"), {"users": "users"}, {"users": "user_id"})
    keys = [f"u{i}" for i in range(250)] + ["nobody"]

    rows = lookup("users", keys)

    assert lookup.calls == 3
    assert len(rows) == 250 and "nobody" not in rows
    assert rows["u42"] == {"user_id": "u42", "tier": "gold", "score": 42}
    assert lookup("users", ["u1", "nobody", "u249"]) == {
        "u1": {"user_id": "u1", "tier": "gold", "score": 1},
        "u249": {"user_id": "u249", "tier": "gold", "score": 249}}
    assert lookup.calls == 3  # served from the container's cache


def test_lookup_retries_unprocessed_keys_until_all_are_read(users):
    proxy = Withholding(clients.client("dynamodb"), n=30, times=2)
    lookup = DynamoLookup(proxy, {"users": "users"}, {"users": "user_id"}, sleep=lambda s: None)

    rows = lookup("users", [f"u{i}" for i in range(100)])

    assert sorted(rows) == sorted(f"u{i}" for i in range(100))
    assert proxy.requests == [100, 30, 30]


def test_lookup_raises_retryable_when_keys_stay_unprocessed(users):
    proxy = Withholding(clients.client("dynamodb"), n=5, times=99)
    slept: list[float] = []
    lookup = DynamoLookup(proxy, {"users": "users"}, {"users": "user_id"}, max_attempts=4,
                          sleep=slept.append)
    with pytest.raises(Retryable, match="5 keys still unprocessed after 4 BatchGetItem calls"):
        lookup("users", [f"u{i}" for i in range(10)])
    assert len(slept) == 4 and slept == sorted(slept)


def test_number_keyed_table_matches_record_values_of_any_form(users):
    lookup = DynamoLookup(clients.client("dynamodb"), {"skus": "skus"},
                          {"skus": {"name": "sku", "type": "N"}})
    assert lookup("skus", [7, "7.0", 8]) == {
        7: {"sku": 7, "name": "Lamp", "price": 19.99},
        "7.0": {"sku": 7, "name": "Lamp", "price": 19.99}}


def test_wrong_key_type_is_a_record_error_and_missing_table_is_retryable(users):
    lookup = DynamoLookup(clients.client("dynamodb"), {"skus": "skus", "gone": "no-such-table"},
                          {"skus": "sku", "gone": "id"})
    # moto does not check key types; DynamoDB answers this ValidationException, replayed here
    class WrongType:
        def batch_get_item(self, RequestItems):
            raise ClientError({"Error": {"Code": "ValidationException", "Message":
                              "The provided key element does not match the schema"}},
                              "BatchGetItem")

    typed = DynamoLookup(WrongType(), {"skus": "skus"}, {"skus": "sku"})
    with pytest.raises(ValueError, match="table 'skus' on 'sku': The provided key element"):
        typed("skus", ["7"])
    with pytest.raises(Retryable, match="no-such-table"):
        lookup("gone", ["x"])
    with pytest.raises(LookupError, match="'other' is not configured .*configured: gone, skus"):
        lookup("other", ["x"])


def test_secret_is_read_once_per_container_and_unknown_names_are_explained(aws):
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="headwater/email-key", SecretString="s3cr3t")["ARN"]
    store = SecretStore(clients.client("secretsmanager"), {"email-key": arn, "gone": "nope"})

    assert store("email-key") == "s3cr3t"
    sm.put_secret_value(SecretId=arn, SecretString="rotated")
    assert store("email-key") == "s3cr3t"  # cached for the container's TTL
    with pytest.raises(LookupError, match="'pii' is not configured .*configured: email-key, gone"):
        store("pii")
    with pytest.raises(Retryable, match="reading secret 'gone'"):
        store("gone")
