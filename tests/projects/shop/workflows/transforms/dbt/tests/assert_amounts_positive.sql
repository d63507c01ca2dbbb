{{ config(tags=['warn']) }}
select * from {{ ref('mrt_category_totals') }} where amount < 0
