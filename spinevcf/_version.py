"""Single source of truth for the spinevcf version (package, app.yaml, SR algorithm id)."""

__version__ = "0.1.0"
