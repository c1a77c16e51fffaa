"""Record transform or factory? The rule: a callable is a record transform only when it
takes exactly two positional parameters without defaults, ``(record, ctx)``; any other
callable given settings is a factory; a shape that fits neither is refused with a message
that shows how to write each."""

from __future__ import annotations

import functools

import pytest

from transforms.contract import Context, SettingsError, factory, instantiate, is_factory
from transforms.registry import PluginSettingsError, Registry

CTX = Context(pipeline="t")


def make_natural(field="category"):  # the way most people write a factory
    def shout(record, ctx):
        record[field] = str(record[field]).upper()
        return record

    return shout


def upper(record, ctx):
    return {k: str(v).upper() for k, v in record.items()}


class Upper:
    def __call__(self, record, ctx):
        return upper(record, ctx)


def test_a_factory_with_defaulted_positional_parameters_takes_settings():
    fn = instantiate(make_natural, {"field": "x"}, "shout")
    assert fn({"x": "a", "category": "b"}, CTX) == {"x": "A", "category": "b"}
    # and without settings it is still a factory, called with its defaults
    assert instantiate(make_natural, {}, "shout")({"category": "b"}, CTX) == {"category": "B"}
    assert is_factory(make_natural)


def test_a_factory_with_required_positional_settings_is_called_with_them():
    def make(field, target="out"):
        return lambda record, ctx: {**record, target: record[field]}

    assert instantiate(make, {"field": "a"}, "copy")({"a": 1}, CTX) == {"a": 1, "out": 1}


@pytest.mark.parametrize("obj", [upper, Upper(), lambda r, c: r,
                                 functools.wraps(upper)(lambda *a, **k: upper(*a, **k))])
def test_two_required_positional_parameters_make_a_record_transform(obj):
    assert not is_factory(obj)
    assert instantiate(obj, {}, "upper") is obj


def test_settings_for_a_record_transform_say_how_to_write_a_factory():
    with pytest.raises(SettingsError) as info:
        instantiate(upper, {"field": "x"}, "upper")
    message = str(info.value)
    assert info.value.setting == "field"
    assert "record transform" in message and "upper(record, ctx)" in message
    assert "def make(*, field=...)" in message and "return upper" in message


@pytest.mark.parametrize("shape", ["one", "three", "star"])
def test_an_ambiguous_shape_without_settings_is_refused_with_both_forms(shape):
    def one(record):
        return record

    def three(record, ctx, extra):
        return record

    def star(*args):
        return args[0]

    obj = {"one": one, "three": three, "star": star}[shape]
    with pytest.raises(SettingsError) as info:
        instantiate(obj, {}, "odd")
    message = str(info.value)
    assert f"{shape}(" in message  # the signature it saw
    assert "def odd(record, ctx)" in message  # how to write a record transform
    assert "def make(*, setting=default)" in message  # how to write a factory
    assert "@factory" in message


def test_the_factory_marker_still_wins():
    @factory
    def make(record, ctx):  # looks like a transform, is marked as a factory
        return upper

    assert instantiate(make, {"record": 1, "ctx": 2}, "m") is upper


def test_the_registry_message_names_pipeline_step_and_the_fix():
    reg = Registry.from_objects({"shout": make_natural, "upper": upper})
    assert reg.build("shout", {"field": "x"}, pipeline="p", step=0)({"x": "a"}, CTX) == {"x": "A"}
    with pytest.raises(PluginSettingsError) as info:
        reg.build("upper", {"field": "x"}, pipeline="p", step=2)
    assert str(info.value).startswith("pipeline 'p', step 2 (upper): setting 'field': ")
    assert "takes no settings" in str(info.value)


def test_a_shape_error_is_not_blamed_on_a_setting():
    def one(record):
        return record

    with pytest.raises(PluginSettingsError) as info:
        Registry.from_objects({"one": one}).build("one", pipeline="p", step=0)
    assert str(info.value).startswith("pipeline 'p', step 0 (one): transform 'one': cannot tell")
