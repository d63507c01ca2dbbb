"""Publishing lakehouse marts to PostgreSQL for BI (see docs/publishing.md)."""

from phlo.publishing.publish import PublishResult, publish_marts_to_postgres

__all__ = ["PublishResult", "publish_marts_to_postgres"]
