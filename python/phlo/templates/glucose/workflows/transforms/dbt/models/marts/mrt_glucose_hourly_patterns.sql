-- The average day: readings by hour of day over every day loaded.
{{ config(materialized='table') }}

select
    hour_of_day,
    count(*) as readings,
    round(avg(glucose_mg_dl), 1) as avg_mg_dl,
    min(glucose_mg_dl) as min_mg_dl,
    max(glucose_mg_dl) as max_mg_dl,
    sum(case when glucose_category = 'low' then 1 else 0 end) as low_readings,
    sum(case when glucose_category = 'high' then 1 else 0 end) as high_readings
from {{ ref('fct_glucose_readings') }}
group by hour_of_day
