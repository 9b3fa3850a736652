-- Daily sales fact. Grain: date x store_id x sku (zero-sale days included, as in the POS feed).
-- Prices are the day's average selling price against the catalog list price; margin uses the
-- catalog unit cost and is NULL where the catalog does not know it.
with sales as (

    select * from {{ ref('int_sales_priced') }}

)

select
    date,
    store_id,
    sku,
    units_sold,
    revenue,
    unit_price,
    list_price,
    price_ratio,
    on_promotion,
    promo_discount_pct,
    stockout,
    unit_cost,
    units_sold * unit_cost                              as cost_of_goods,
    revenue - units_sold * unit_cost                    as gross_margin,
    (revenue - units_sold * unit_cost) / nullif(revenue, 0)
                                                        as gross_margin_pct,
    competitor_min_price,
    competitor_price_age_days,
    price_to_competitor_ratio,
    is_active_day
from sales
