-- Calendar dimension, one row per day of the calendar feed: ISO parts, holiday and trading-event
-- flags, and distances to the dates that drive seasonal demand.
with calendar as (

    select * from {{ ref('stg_calendar') }}

),

with_next_holiday as (

    select
        *,
        -- The next public holiday on or after the day (NULL past the last one in the calendar).
        min(case when is_holiday then date end) over (
            order by date rows between current row and unbounded following
        ) as next_holiday_date
    from calendar

)

select
    date,
    day_of_week,
    week_of_year,
    month,
    year,
    quarter(date)                                       as quarter,
    day(date)                                           as day_of_month,
    dayofyear(date)                                     as day_of_year,
    cast(date_trunc('week', date) as date)              as week_start_date,
    cast(date_trunc('month', date) as date)             as month_start_date,
    date = last_day(date)                               as is_month_end,
    is_weekend,
    is_holiday,
    holiday_name,
    event_name,
    is_event_day,
    {%- for event in var('trading_events') %}
    coalesce(event_name = '{{ event }}', false)         as is_{{ event }},
    {%- endfor %}
    -- Days until the next Christmas Day (0 on the day itself).
    cast(case
        when date <= make_date(year(date), 12, 25) then make_date(year(date), 12, 25) - date
        else make_date(year(date) + 1, 12, 25) - date
    end as integer)                                     as days_to_christmas,
    cast(next_holiday_date - date as integer)           as days_to_next_holiday
from with_next_holiday
