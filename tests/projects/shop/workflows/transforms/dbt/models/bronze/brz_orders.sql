{{ config(materialized='view') }}
select id, category, amount, _phlo_partition_date as order_date
from {{ source('raw', 'orders') }}
