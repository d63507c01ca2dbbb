-- Daily statistics: mean, spread, and time below / in / above range.
{{ config(materialized='table') }}

select
    reading_date,
    count(*) as readings,
    round(avg(glucose_mg_dl), 1) as avg_mg_dl,
    min(glucose_mg_dl) as min_mg_dl,
    max(glucose_mg_dl) as max_mg_dl,
    round(stddev_samp(glucose_mg_dl), 1) as sd_mg_dl,
    round(100.0 * stddev_samp(glucose_mg_dl) / avg(glucose_mg_dl), 1) as cv_pct,
    round(100.0 * avg(case when glucose_category = 'low' then 1 else 0 end), 1) as time_below_range_pct,
    round(100.0 * avg(case when glucose_category = 'in_range' then 1 else 0 end), 1) as time_in_range_pct,
    round(100.0 * avg(case when glucose_category = 'high' then 1 else 0 end), 1) as time_above_range_pct
from {{ ref('fct_glucose_readings') }}
group by reading_date
