"""The one place the package version is written (read by pyproject.toml and ``mbrl --version``)."""

__version__ = "0.2.0"
