-- Promotion and price plan, one row per (store_id, sku, start_date): a SKU's planned price,
-- discount and mechanic over an inclusive date range, for every store (store_id NULL) or one
-- store. The feed is optional. marts/demand_plan expands it to store x SKU x day.
with source as (

    select * from {{ source('raw', 'promotion_plan') }}

),

typed as (

    select
        nullif(trim(store_id), '')                  as store_id,
        trim(sku)                                   as sku,
        cast(start_date as date)                    as start_date,
        cast(end_date as date)                      as end_date,
        cast(planned_price as double)               as planned_price,
        cast(discount_pct as double)                as discount_pct,
        nullif(lower(trim(promo_type)), '')         as promo_type
    from source

),

deduplicated as (

    -- A plan row sent twice keeps the longer range, then the deeper discount; the rest only
    -- breaks ties so the kept row never depends on physical row order.
    select *
    from typed
    qualify row_number() over (
        partition by store_id, sku, start_date
        order by end_date desc, discount_pct desc nulls last, planned_price nulls last,
                 promo_type nulls last
    ) = 1

)

select
    *,
    -- A promotion: a discount, or a promotion mechanic other than 'regular' (a display or
    -- multi-buy without a price cut). A row with neither plans a regular price.
    coalesce(discount_pct, 0) > 0
        or coalesce(promo_type <> '{{ var("regular_promo_type") }}', false)  as on_promotion,
    cast(end_date - start_date as integer) + 1                                 as n_days
from deduplicated
