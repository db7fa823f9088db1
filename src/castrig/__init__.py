"""castrig: control and data acquisition for a breath-figure membrane casting rig."""


def __getattr__(name: str) -> str:
    # castrig.__version__ read when asked: importlib.metadata takes ~60 ms, and the castrig process
    # imports this package before its early signal handlers are in place (cli/entry.py)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("castrig")
        except PackageNotFoundError:  # running from a source tree that was not installed
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'castrig' has no attribute {name!r}")
