"""The package version, in one place: the root package re-exports it, the command line prints it."""
__version__ = "0.1.0"
