-- Daily sales with the prices that explain them: our list price and cost from the catalog and the
-- competitor price known at the start of the day. Grain: date x store_id x sku (as stg_sales).
--
-- A view: its only reader is fct_daily_sales, which materialises it with margins added. As a table
-- it would write the same 7M rows twice per build for nothing (two small hash joins are all it does).
{{ config(materialized='view') }}
with sales as (

    select * from {{ ref('stg_sales') }}

),

products as (

    select sku, list_price, unit_cost, launch_date, discontinued_date
    from {{ ref('stg_products') }}

),

competitor_prices as (

    select * from {{ ref('int_competitor_prices_daily') }}

)

select
    sales.date,
    sales.store_id,
    sales.sku,
    sales.units_sold,
    sales.sales_value,
    sales.demand_quantity,
    sales.demand_measure,
    sales.revenue,
    sales.unit_price,
    products.list_price,
    sales.unit_price / nullif(products.list_price, 0)                 as price_ratio,
    sales.on_promotion,
    sales.promo_discount_pct,
    sales.stockout,
    products.unit_cost,
    competitor_prices.competitor_min_price,
    competitor_prices.competitor_price_age_days,
    sales.unit_price / nullif(competitor_prices.competitor_min_price, 0) as price_to_competitor_ratio,
    -- On sale per the catalog: launched (or launch unknown) and not past its last day.
    (products.launch_date is null or sales.date >= products.launch_date)
        and (products.discontinued_date is null or sales.date <= products.discontinued_date)
                                                                       as is_active_day
from sales
left join products
    on sales.sku = products.sku
left join competitor_prices
    on  sales.sku = competitor_prices.sku
    and sales.date = competitor_prices.date
