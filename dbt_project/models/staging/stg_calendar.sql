-- Chain-wide retail calendar, one row per day, with holiday and trading-event names normalised.
-- The ISO parts are derived from the date where the feed leaves them out (a holiday list export
-- is often just dates and names); a day with a holiday name is a holiday.
with source as (

    select * from {{ source('raw', 'calendar') }}

),

typed as (

    select
        cast(date as date)                          as date,
        cast(coalesce(day_of_week, isodow(cast(date as date))) as integer)
                                                    as day_of_week,
        cast(coalesce(week_of_year, weekofyear(cast(date as date))) as integer)
                                                    as week_of_year,
        cast(coalesce(month, month(cast(date as date))) as integer)
                                                    as month,
        cast(coalesce(year, year(cast(date as date))) as integer)
                                                    as year,
        coalesce(
            cast(is_holiday as boolean), nullif(trim(holiday_name), '') is not null
        )                                           as is_holiday,
        nullif(trim(holiday_name), '')              as holiday_name,
        -- Event names are used as flags downstream (black_friday, ...), so normalise them.
        nullif(lower(trim(event_name)), '')         as event_name
    from source

),

deduplicated as (

    -- A day listed twice keeps the richer record: the holiday / event version wins.
    select *
    from typed
    qualify row_number() over (
        partition by date
        order by is_holiday desc, holiday_name nulls last, event_name nulls last,
                 day_of_week, week_of_year, month, year
    ) = 1

)

select
    *,
    day_of_week >= 6          as is_weekend,
    event_name is not null    as is_event_day
from deduplicated
