"""Data quality: the check-result contract shared by every check (`CheckResult`)."""

from phlo.quality.contract import CheckResult

__all__ = ["CheckResult"]
