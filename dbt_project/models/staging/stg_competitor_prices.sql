-- Competitor shelf prices, one row per (observed_date, sku, competitor). Not every day is observed.
with source as (

    select * from {{ source('raw', 'competitor_prices') }}

),

typed as (

    select
        -- Renamed from "date": it is the day the price was scraped, not a trading day.
        cast(date as date)                  as observed_date,
        trim(sku)                           as sku,
        lower(trim(competitor))             as competitor,
        cast(competitor_price as double)    as competitor_price
    from source

),

deduplicated as (

    -- Two scrapes of the same shelf on one day: keep the lower price, the one a shopper would see
    -- as the offer to beat.
    select *
    from typed
    qualify row_number() over (
        partition by observed_date, sku, competitor
        order by competitor_price
    ) = 1

)

select * from deduplicated
