{{ config(materialized='table') }}
select category, count(*) as orders, sum(amount) as amount
from {{ ref('fct_orders') }}
group by category
