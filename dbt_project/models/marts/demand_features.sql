-- Demand forecasting input table. Grain: store_id x sku x date, one row per active store-SKU-day
-- (a day in the sales feed on which the catalog has the SKU on sale).
--
-- Targets: units_sold and stockout of day d.
-- Columns known at the START of day d: the day's price and promotion plan, the calendar, the
-- catalog and store attributes, and the competitor price last observed on or before d - 1
-- (fct_daily_sales / int_competitor_prices_daily).
--
-- No demand-history columns (lags, rolling means, same week last year). The model forecasts
-- from an origin day o for targets o + 1 .. o + 28, so its history must end at o, not at d - 1,
-- and serving needs it at the last data day, where no row d exists: the history features are
-- defined once, in Python (retail_assets/models/demand/features.py, `origin_features`), from the
-- units_sold of the rows here with date <= o. That is also why each row must carry the units
-- of its own day (tests/assert_demand_features_are_point_in_time.sql).
with sales as (

    -- The daily fact already carries the day's prices and the competitor price known at its start
    -- (and its key test gates this model).
    select * from {{ ref('fct_daily_sales') }}

),

calendar as (

    select * from {{ ref('dim_dates') }}

),

products as (

    select sku, department, category, subcategory, brand, effective_launch_date
    from {{ ref('dim_products') }}

),

stores as (

    select store_id, region, store_format from {{ ref('dim_stores') }}

)

select
    sales.store_id,
    sales.sku,
    sales.date,

    -- targets
    sales.units_sold,
    sales.stockout,

    -- price and promotion plan for day d
    sales.unit_price,
    sales.list_price,
    sales.price_ratio,
    sales.on_promotion,
    sales.promo_discount_pct,

    -- competition, as last observed on or before d - 1
    sales.competitor_min_price,

    -- calendar of day d
    calendar.day_of_week,
    calendar.week_of_year,
    calendar.month,
    calendar.is_holiday,
    calendar.is_event_day,
    {%- for event in var('trading_events') %}
    calendar.is_{{ event }},
    {%- endfor %}
    calendar.days_to_christmas,

    -- product and store
    products.department,
    products.category,
    products.subcategory,
    products.brand,
    cast(sales.date - products.effective_launch_date as integer)
                                                        as days_since_launch,
    stores.region                                       as store_region,
    stores.store_format
from sales
left join calendar on sales.date = calendar.date
left join products on sales.sku = products.sku
left join stores on sales.store_id = stores.store_id
-- The days the feed has on which the SKU is on sale.
where sales.units_sold is not null
  and sales.is_active_day
