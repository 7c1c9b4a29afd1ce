"""armonik-observe: observability exporter and post-mortem analytics for ArmoniK."""

__version__ = "0.1.0"
