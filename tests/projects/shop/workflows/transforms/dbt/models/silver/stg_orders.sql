{{ config(materialized='table') }}
select o.id, o.category, c.label, o.amount, o.order_date
from {{ ref('brz_orders') }} as o
left join {{ ref('categories') }} as c using (category)
