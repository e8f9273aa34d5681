"""Package marker so the metric module ships with the wheel; load it with ``evaluate.load(<this folder>)``."""
