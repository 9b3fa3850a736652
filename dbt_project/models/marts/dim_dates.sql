-- Calendar dimension, one row per day of the calendar feed: ISO parts, holiday and trading-event
-- flags, and distances to the dates that drive seasonal demand. Chain-wide: what differs by
-- store (closures, regional and school holidays, local events) is in dim_store_dates; here only
-- how many stores are planned closed and whether any store trades at all.
-- With RETAIL_DEMAND_GRAIN=week the holiday, event and open flags describe the week ending on
-- the date (macros/demand_period.sql), the period a weekly sales row of that date covers.
with calendar as (

    select * from {{ ref('stg_calendar') }}

),

n_stores as (

    select count(*) as n_stores from {{ ref('stg_stores') }}

),

planned_closures as (

    select store_calendar.date, count(*) as n_stores_planned_closed
    from {{ ref('stg_store_calendar') }} as store_calendar
    inner join {{ ref('stg_stores') }} as stores on store_calendar.store_id = stores.store_id
    where not store_calendar.is_open
    group by store_calendar.date

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
    {{ any_in_demand_period('is_holiday') }}            as is_holiday,
    holiday_name,
    event_name,
    {{ any_in_demand_period('is_event_day') }}          as is_event_day,
    {%- for event in var('trading_events') %}
    {{ any_in_demand_period("coalesce(event_name = '" ~ event ~ "', false)") }}
                                                        as is_{{ event }},
    {%- endfor %}
    -- Days until the next Christmas Day (0 on the day itself).
    cast(case
        when date <= make_date(year(date), 12, 25) then make_date(year(date), 12, 25) - date
        else make_date(year(date) + 1, 12, 25) - date
    end as integer)                                     as days_to_christmas,
    cast(next_holiday_date - date as integer)           as days_to_next_holiday,
    coalesce(planned_closures.n_stores_planned_closed, 0)
                                                        as n_stores_planned_closed,
    -- The chain trades that day: at least one store is planned open.
    {{ any_in_demand_period(
        'coalesce(planned_closures.n_stores_planned_closed, 0) < n_stores.n_stores'
    ) }}                                                as is_open
from with_next_holiday
cross join n_stores
left join planned_closures using (date)
