-- Retail calendar, one row per day, with holiday and trading-event names normalised.
with source as (

    select * from {{ source('raw', 'calendar') }}

),

typed as (

    select
        cast(date as date)                          as date,
        cast(day_of_week as integer)                as day_of_week,
        cast(week_of_year as integer)               as week_of_year,
        cast(month as integer)                      as month,
        cast(year as integer)                       as year,
        coalesce(cast(is_holiday as boolean), false) as is_holiday,
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
