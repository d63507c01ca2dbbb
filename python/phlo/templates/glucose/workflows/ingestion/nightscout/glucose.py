"""Ingest one day of CGM readings from the Nightscout API into ``raw.glucose_entries``."""

import os

from dlt.sources.rest_api import rest_api_source
from workflows.ingestion.nightscout.sample_api import local_url
from workflows.schemas.nightscout import RawGlucoseEntries

from phlo import phlo_ingestion


@phlo_ingestion(
    table_name="glucose_entries",
    unique_key="_id",
    validation_schema=RawGlucoseEntries,
    group="nightscout",
    cron="0 */1 * * *",
    freshness_hours=(1, 24),
    merge_strategy="merge",
    merge_config={"deduplication_method": "last"},
    partition_spec=["day(date_string)"],
    max_retries=2,
    retry_delay_seconds=1,
)
def glucose_entries(partition_date: str):  # type: ignore[no-untyped-def]
    """The readings of one UTC day, page by page."""
    return rest_api_source(
        {
            "client": {
                # A real Nightscout (…/api/v1/) when set; else the sample readings the project
                # ships, served over HTTP from this process (sample_api.py).
                "base_url": os.environ.get("NIGHTSCOUT_URL") or local_url(),
                "paginator": {
                    "type": "page_number",
                    "page_param": "page",
                    "base_page": 1,
                    "total_path": "total_pages",
                },
            },
            "resources": [
                {
                    "name": "glucose_entries",
                    "endpoint": {
                        "path": "entries",
                        "data_selector": "data",
                        "params": {"date": partition_date, "per_page": 100},
                    },
                }
            ],
        }
    )
