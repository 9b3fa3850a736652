-- Daily sales fact. Grain: date x store_id x sku (zero-sale days included, as in the POS feed).
-- Prices are the day's average selling price against the catalog list price; margin uses the
-- catalog unit cost and is NULL where the catalog or the units are not known.
-- units_sold is what the feed reported (NULL for value-only rows); demand_quantity and
-- demand_measure are what demand models use (stg_sales: units per series where every row has
-- units, else sales value).
with sales as (

    select * from {{ ref('int_sales_priced') }}

)

select
    date,
    store_id,
    sku,
    units_sold,
    sales_value,
    demand_quantity,
    demand_measure,
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
