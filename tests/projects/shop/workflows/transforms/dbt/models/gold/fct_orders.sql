{{ config(materialized='incremental', unique_key='id') }}
select id, category, amount, order_date, '{{ var("partition_date_str", "none") }}' as built_for
from {{ ref('stg_orders') }}
{% if is_incremental() %}
where id > (select max(id) from {{ this }})
{% endif %}
