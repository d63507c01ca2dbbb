-- Raw readings, renamed and typed; new readings are merged in by entry_id.
{{ config(materialized='incremental', unique_key='entry_id') }}

select
    _id as entry_id,
    sgv as glucose_mg_dl,
    date_string as reading_at,
    direction,
    trend,
    device
from {{ source('raw', 'glucose_entries') }}
where type = 'sgv'
{% if is_incremental() %}
    and date_string > (select max(reading_at) from {{ this }})
{% endif %}
