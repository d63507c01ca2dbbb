-- Daily time in range for dashboards; the consensus target is >= 70 % in range, < 4 % below.
{{ config(materialized='table') }}

select
    reading_date,
    readings,
    avg_mg_dl,
    time_in_range_pct,
    time_below_range_pct,
    time_above_range_pct,
    cv_pct,
    time_in_range_pct >= 70 and time_below_range_pct < 4 as target_met
from {{ ref('fct_daily_glucose_metrics') }}
