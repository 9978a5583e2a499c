"""linkage: record linkage across UK health and care datasets on Spark, Delta and MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linkage")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
