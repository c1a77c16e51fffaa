"""A plugin whose import fails, as one with a missing dependency does."""

raise ImportError("headwater_testplugins.broken needs the package 'not_installed_dependency'")
