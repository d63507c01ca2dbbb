-- One row per reading, with its UTC day and hour and its clinical category.
{{ config(materialized='table') }}

select
    entry_id,
    reading_at,
    cast(reading_at at time zone 'UTC' as date) as reading_date,
    cast(extract(hour from reading_at at time zone 'UTC') as integer) as hour_of_day,
    glucose_mg_dl,
    round(glucose_mg_dl / 18.0, 1) as glucose_mmol_l,
    case
        when glucose_mg_dl < 70 then 'low'
        when glucose_mg_dl <= 180 then 'in_range'
        else 'high'
    end as glucose_category,
    direction
from {{ ref('stg_glucose_entries') }}
