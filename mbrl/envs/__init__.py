"""Environments shipped with mbrl, registered with gymnasium when :mod:`mbrl` is imported."""
