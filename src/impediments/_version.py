"""The package version, at the bottom layer so that any package can name it without importing the facade."""
__version__ = "0.1.0"
