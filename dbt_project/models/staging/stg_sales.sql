-- Daily point-of-sale totals, one row per (date, store_id, sku), zero-sale days included.
--
-- A retailer reports units, sales value or both (contracts.SALES: every row has at least one).
-- Staging exposes the quantity the marts model as `demand_quantity` and says what it measures in
-- `demand_measure`, decided per store x SKU series so that a series never switches measure
-- half-way through its history (its lags and rolling means would mix units with money):
--   * 'units' when every row of the series reports units_sold: the quantity is units_sold;
--   * 'value' otherwise (e.g. a retailer without unit counts, or items sold by weight in a
--     store that counts the rest): the quantity is the sales value of the day.
with source as (

    select * from {{ source('raw', 'sales') }}

),

typed as (

    select
        cast(date as date)                  as date,
        trim(store_id)                      as store_id,
        trim(sku)                           as sku,
        cast(units_sold as integer)         as units_sold,
        cast(unit_price as double)          as reported_unit_price,
        cast(on_promotion as boolean)       as on_promotion,
        cast(promo_discount_pct as double)  as promo_discount_pct,
        cast(stockout as boolean)           as stockout,
        cast(revenue as double)             as reported_revenue,
        cast(sales_value as double)         as reported_sales_value
    from source

),

deduplicated as (

    -- The feed has no load timestamp, so a re-sent day cannot be ordered by arrival. Keep the
    -- fullest count (most units, then most value: a resend usually adds late scans); the other
    -- columns only break ties so the kept row never depends on physical row order.
    select *
    from typed
    qualify row_number() over (
        partition by date, store_id, sku
        order by units_sold desc nulls last,
                 reported_sales_value desc nulls last,
                 reported_revenue desc nulls last,
                 reported_unit_price desc nulls last,
                 on_promotion desc nulls last,
                 promo_discount_pct desc nulls last,
                 stockout desc nulls last
    ) = 1

),

derived as (

    select
        date,
        store_id,
        sku,
        units_sold,
        -- The value of the day's sales: as reported, else the feed's revenue, else units x price.
        coalesce(reported_sales_value, reported_revenue, units_sold * reported_unit_price)
                                                                    as sales_value,
        -- The price per unit: as reported, else value / units when both are known.
        coalesce(
            reported_unit_price,
            coalesce(reported_sales_value, reported_revenue) / nullif(units_sold, 0)
        )                                                           as unit_price,
        on_promotion,
        promo_discount_pct,
        stockout,
        coalesce(reported_revenue, reported_sales_value, units_sold * reported_unit_price)
                                                                    as revenue,
        bool_and(units_sold is not null) over (partition by store_id, sku)
                                                                    as series_reports_units
    from deduplicated

)

select
    date,
    store_id,
    sku,
    units_sold,
    sales_value,
    unit_price,
    on_promotion,
    promo_discount_pct,
    stockout,
    revenue,
    case when series_reports_units then 'units' else 'value' end   as demand_measure,
    case when series_reports_units then cast(units_sold as double) else sales_value end
                                                                    as demand_quantity
from derived
