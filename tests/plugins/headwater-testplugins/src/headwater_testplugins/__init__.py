"""Test-only headwater plugins (installed by the registry tests, never shipped)."""
