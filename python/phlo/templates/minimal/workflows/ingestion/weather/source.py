"""The source of the readings: generated from the stations shipped in data/stations.csv, the
same rows for the same day (no network). Replace it with your own source: an API client, a dlt
source (`pip install 'phlo[dlt]'`), files."""

import csv
import datetime as dt
import math
from pathlib import Path

STATIONS_CSV = Path(__file__).parents[3] / "data" / "stations.csv"


def stations() -> list[dict[str, str]]:
    with STATIONS_CSV.open(newline="") as file:
        return list(csv.DictReader(file))


def readings_of(partition_date: str) -> list[dict[str, object]]:
    """24 hourly readings per station for the day `partition_date` (``YYYY-MM-DD``)."""
    day = dt.date.fromisoformat(partition_date)
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365)
    rows: list[dict[str, object]] = []
    for station in stations():
        mean = float(station["mean_temperature_c"])
        for hour in range(24):
            observed_at = midnight + dt.timedelta(hours=hour)
            daily = math.sin(2 * math.pi * (hour - 9) / 24)
            rows.append(
                {
                    "reading_id": f"{station['station']}-{observed_at:%Y%m%dT%H}",
                    "station": station["station"],
                    "observed_at": observed_at,
                    "temperature_c": round(mean + 10 * season + 4 * daily, 1),
                    # The sensor reports no humidity at 03:00 (a gap the contract allows).
                    "humidity_pct": None if hour == 3 else round(60 - 20 * daily, 1),
                }
            )
    return rows
