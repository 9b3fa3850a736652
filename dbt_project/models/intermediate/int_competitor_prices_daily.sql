-- Competitor price known at the START of each day, per SKU: for every competitor, the last price
-- observed on or before the previous day (scrapes land during the day, so a same-day scrape is
-- not known when the day's prices are set), then the lowest across competitors.
-- Grain: sku x date, over the trading days of the sales feed; SKU-days before any observation
-- are absent (consumers left join and get NULL).
with observations as (

    select sku, competitor, observed_date, competitor_price
    from {{ ref('stg_competitor_prices') }}

),

trading_days as (

    select cast(day as date) as date
    from (
        select unnest(generate_series(min(date), max(date), interval 1 day)) as day
        from {{ ref('stg_sales') }}
    )

),

sku_competitor_days as (

    select pairs.sku, pairs.competitor, trading_days.date
    from (select distinct sku, competitor from observations) as pairs
    cross join trading_days

),

latest_price_per_competitor as (

    -- ASOF join: the newest observation strictly before the day, i.e. on or before d - 1.
    select
        days.sku,
        days.date,
        days.competitor,
        obs.observed_date,
        obs.competitor_price
    from sku_competitor_days as days
    asof join observations as obs
        on  days.sku = obs.sku
        and days.competitor = obs.competitor
        and days.date > obs.observed_date

)

select
    sku,
    date,
    min(competitor_price)                               as competitor_min_price,
    avg(competitor_price)                               as competitor_avg_price,
    count(*)                                            as n_competitors_observed,
    -- Age of the cheapest offer: a price scraped weeks ago is weaker evidence. When competitors
    -- tie on price the newest observation wins, so rebuilds of the same data agree.
    cast(date - first(observed_date order by competitor_price, observed_date desc) as integer)
                                                        as competitor_price_age_days
from latest_price_per_competitor
group by sku, date
