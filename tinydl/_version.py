"""The package version (tinydl.__version__; pyproject.toml holds the same), below every module that names it."""
__version__ = "0.1.0"
