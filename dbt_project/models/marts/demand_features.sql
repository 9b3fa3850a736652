-- Training / scoring table for demand forecasting. Grain: store_id x sku x date, one row per
-- active store-SKU-day (a day in the sales feed on which the catalog has the SKU on sale).
--
-- Targets: units_sold and stockout of day d.
-- Features only use what is known at the START of day d:
--   * demand history: lags and rolling statistics over days ending at d - 1;
--   * known in advance for d: the day's price and promotion plan, the calendar, the catalog and
--     store attributes, and the competitor price last observed on or before d - 1.
--
-- Gap safety: history windows count DAYS, not rows. Each store-SKU series is first expanded to
-- every calendar day between its first and last sale row (days missing from the feed become rows
-- with NULL units), so a row offset equals a day offset and plain ROWS frames / lag() are exact:
-- a lag whose day is missing is NULL, and rolling means average only the days that were observed.
--
-- Speed (the whole dbt build must stay well under 40 s at ~7M sales rows on 2 cores): ROWS frames
-- and lag() on the densified series were ~4x faster than the same features as RANGE frames with
-- INTERVAL bounds (20 s for the windows alone on 7.2M rows), and partitioning by a small integer
-- series_id instead of the (store_id, sku) strings roughly halved the window sort again. The
-- model now builds in ~6 s on 6.3M rows, about half of it writing the table.
with sales as (

    -- The daily fact already carries the day's prices and the competitor price known at its start
    -- (and its key test gates this model).
    select * from {{ ref('fct_daily_sales') }}

),

series as (

    -- One row per store-SKU series with an integer id for cheap partitioning.
    select
        store_id,
        sku,
        min(date)                                       as first_date,
        max(date)                                       as last_date,
        count(*)                                        as n_days_in_feed,
        row_number() over (order by store_id, sku)      as series_id
    from sales
    group by store_id, sku

),

series_sales as (

    select
        series.series_id,
        sales.date,
        sales.units_sold,
        cast(sales.units_sold = 0 as integer)           as is_zero_sale,
        sales.stockout,
        sales.is_active_day,
        sales.unit_price,
        sales.list_price,
        sales.price_ratio,
        sales.on_promotion,
        sales.promo_discount_pct,
        sales.competitor_min_price,
        sales.competitor_price_age_days,
        sales.price_to_competitor_ratio
    from sales
    inner join series
        on  sales.store_id = series.store_id
        and sales.sku = series.sku

),

missing_days as (

    -- Days inside a series that the feed does not have. Only series with holes are expanded, so a
    -- gap-free feed (the usual case) pays nothing here.
    select expanded.series_id, expanded.date
    from (
        select
            series_id,
            cast(unnest(generate_series(first_date, last_date, interval 1 day)) as date) as date
        from series
        where n_days_in_feed < last_date - first_date + 1
    ) as expanded
    anti join (
        select series_id, date
        from series_sales
        where series_id in (
            select series_id from series where n_days_in_feed < last_date - first_date + 1
        )
    ) as present
        on  expanded.series_id = present.series_id
        and expanded.date = present.date

),

daily_history as (

    -- Every day of every series; the sales columns are NULL on the days the feed does not have.
    select * from series_sales
    union all by name
    select series_id, date from missing_days

),

history_features as (

    select
        *,
        lag(units_sold, 1)   over series_by_day as units_lag_1,
        lag(units_sold, 7)   over series_by_day as units_lag_7,
        lag(units_sold, 14)  over series_by_day as units_lag_14,
        lag(units_sold, 28)  over series_by_day as units_lag_28,
        lag(units_sold, 364) over series_by_day as units_lag_364,
        avg(units_sold)         over (series_by_day rows between 7 preceding and 1 preceding)  as units_mean_7d,
        avg(units_sold)         over (series_by_day rows between 28 preceding and 1 preceding) as units_mean_28d,
        avg(units_sold)         over (series_by_day rows between 91 preceding and 1 preceding) as units_mean_91d,
        stddev_samp(units_sold) over (series_by_day rows between 28 preceding and 1 preceding) as units_std_28d,
        avg(is_zero_sale)       over (series_by_day rows between 28 preceding and 1 preceding) as zero_sale_share_28d,
        -- Same week last year: the 7 days centred on d - 364 (same weekday), i.e. d-367 .. d-361.
        avg(units_sold)         over (series_by_day rows between 367 preceding and 361 preceding)
                                                                                                as units_mean_same_week_last_year
    from daily_history
    window series_by_day as (partition by series_id order by date)

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
    series.store_id,
    series.sku,
    history.date,

    -- targets
    history.units_sold,
    history.stockout,

    -- demand history (days ending at d - 1)
    history.units_lag_1,
    history.units_lag_7,
    history.units_lag_14,
    history.units_lag_28,
    history.units_lag_364,
    history.units_mean_7d,
    history.units_mean_28d,
    history.units_mean_91d,
    history.units_std_28d,
    history.zero_sale_share_28d,
    history.units_mean_same_week_last_year,

    -- price and promotion plan for day d
    history.unit_price,
    history.list_price,
    history.price_ratio,
    history.on_promotion,
    history.promo_discount_pct,

    -- competition, as last observed on or before d - 1
    history.competitor_min_price,
    history.competitor_price_age_days,
    history.price_to_competitor_ratio,

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
    cast(history.date - products.effective_launch_date as integer)
                                                        as days_since_launch,
    stores.region                                       as store_region,
    stores.store_format
from history_features as history
inner join series on history.series_id = series.series_id
left join calendar on history.date = calendar.date
left join products on series.sku = products.sku
left join stores on series.store_id = stores.store_id
-- Keep the days the feed has (the filler days only served the windows) on which the SKU is on sale.
where history.units_sold is not null
  and history.is_active_day
