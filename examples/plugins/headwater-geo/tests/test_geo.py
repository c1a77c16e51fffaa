import pytest
from headwater_geo import make


def test_known_code_adds_the_name():
    assert make()({"country": " de "}, None)["country_name"] == "Germany"


def test_unknown_code_follows_on_unknown():
    assert "country_name" not in make()({"country": "XX"}, None)
    assert make(on_unknown="null")({"country": "XX"}, None)["country_name"] is None
    with pytest.raises(ValueError, match="unknown country code 'XX'"):
        make(on_unknown="error")({"country": "XX"}, None)


def test_bad_setting_is_refused():
    with pytest.raises(ValueError, match="on_unknown"):
        make(on_unknown="skip")
