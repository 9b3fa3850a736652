-- Demand forecasting input table. Grain: store_id x sku x date, one row per active store-SKU-day
-- (a day in the sales feed on which the catalog has the SKU on sale).
--
-- Targets: units_sold and stockout of day d. units_sold is the series' demand quantity (the name
-- is kept because the model reads it everywhere): units where every row of the store-SKU series
-- reports units, else the sales value of the day; demand_measure says which ('units' | 'value').
-- Columns known at the START of day d: the day's price and promotion plan, the calendar (the
-- chain's and the store's own: planned opening, regional and school holidays, local events), the
-- catalog and store attributes, and the competitor price last observed on or before d - 1
-- (fct_daily_sales / int_competitor_prices_daily).
--
-- Price and promotion of day d: the sales feed's realised values win (the plan was executed, or
-- the feed knows better); where the feed does not record them, the promotion plan's fill in
-- (demand_plan). The plan's own values are carried beside them as planned_* so a model can be
-- trained on exactly what it will be given for future days (where only the plan exists).
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

),

store_days as (

    select store_id, date, is_open, is_holiday, school_holiday, store_event_name
    from {{ ref('dim_store_dates') }}

),

plan as (

    select store_id, sku, date, planned_price, discount_pct, on_promotion
    from {{ ref('demand_plan') }}

)

select
    sales.store_id,
    sales.sku,
    sales.date,

    -- targets
    sales.demand_quantity                               as units_sold,
    sales.stockout,
    sales.demand_measure,

    -- price and promotion for day d: realised where the feed records it, else planned
    coalesce(sales.unit_price, plan.planned_price)      as unit_price,
    sales.list_price,
    coalesce(sales.price_ratio, plan.planned_price / nullif(sales.list_price, 0))
                                                        as price_ratio,
    coalesce(sales.on_promotion, plan.on_promotion)     as on_promotion,
    coalesce(sales.promo_discount_pct, plan.discount_pct)
                                                        as promo_discount_pct,

    -- the promotion plan for day d as planned (NULL / false: nothing planned)
    plan.planned_price,
    coalesce(plan.discount_pct, 0)                      as planned_discount_pct,
    coalesce(plan.on_promotion, false)                  as planned_on_promotion,

    -- competition, as last observed on or before d - 1
    sales.competitor_min_price,

    -- calendar of day d
    calendar.day_of_week,
    calendar.week_of_year,
    calendar.month,
    -- Public holiday at this store: the chain's or its region's (dim_store_dates).
    coalesce(store_days.is_holiday, calendar.is_holiday)
                                                        as is_holiday,
    calendar.is_event_day,
    {%- for event in var('trading_events') %}
    calendar.is_{{ event }},
    {%- endfor %}
    calendar.days_to_christmas,

    -- the store's own calendar of day d (dim_store_dates)
    coalesce(store_days.is_open, true)                  as is_open,
    coalesce(store_days.school_holiday, false)          as school_holiday,
    store_days.store_event_name,

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
left join store_days on sales.store_id = store_days.store_id and sales.date = store_days.date
left join plan
    on  sales.store_id = plan.store_id
    and sales.sku = plan.sku
    and sales.date = plan.date
-- The days the feed has on which the SKU is on sale.
where sales.demand_quantity is not null
  and sales.is_active_day
