-- Daily point-of-sale totals, one row per (date, store_id, sku), zero-sale days included.
with source as (

    select * from {{ source('raw', 'sales') }}

),

typed as (

    select
        cast(date as date)                  as date,
        trim(store_id)                      as store_id,
        trim(sku)                           as sku,
        cast(units_sold as integer)         as units_sold,
        cast(unit_price as double)          as unit_price,
        cast(on_promotion as boolean)       as on_promotion,
        cast(promo_discount_pct as double)  as promo_discount_pct,
        cast(stockout as boolean)           as stockout,
        cast(revenue as double)             as revenue
    from source

),

deduplicated as (

    -- The feed has no load timestamp, so a re-sent day cannot be ordered by arrival. Keep the
    -- fullest count (most units, then most revenue: a resend usually adds late scans); the other
    -- columns only break ties so the kept row never depends on physical row order.
    select *
    from typed
    qualify row_number() over (
        partition by date, store_id, sku
        order by units_sold desc, revenue desc, unit_price desc,
                 on_promotion desc, promo_discount_pct desc, stockout desc
    ) = 1

)

select * from deduplicated
