-- Store calendar dimension. Grain: store_id x date, every store on every day of the chain
-- calendar (dim_dates, which runs ahead of the sales: the days forecasts are made for are here).
-- Each store-day merges the chain calendar with the store's own (stg_store_calendar, optional
-- and possibly sparse): a store-day the store calendar does not list is open, has the chain's
-- holidays and events, and no school holiday. With RETAIL_DEMAND_GRAIN=week the open, holiday,
-- school-holiday and event flags describe the week ending on the date (macros/demand_period.sql).
with stores as (

    select store_id, region, store_format from {{ ref('stg_stores') }}

),

dates as (

    select date, is_holiday, holiday_name, event_name, is_event_day from {{ ref('dim_dates') }}

),

store_calendar as (

    select * from {{ ref('stg_store_calendar') }}

),

data_end as (

    select sales_end_date from {{ ref('int_data_end') }}

)

select
    stores.store_id,
    dates.date,
    stores.region                                           as store_region,
    stores.store_format,
    {{ any_in_demand_period('coalesce(store_calendar.is_open, true)', 'stores.store_id', 'dates.date') }}
                                                            as is_open,
    -- Public holiday at this store: the chain's or the store's region's.
    {{ any_in_demand_period(
        'dates.is_holiday or store_calendar.holiday_name is not null', 'stores.store_id', 'dates.date'
    ) }}                                                    as is_holiday,
    coalesce(store_calendar.holiday_name, dates.holiday_name)
                                                            as holiday_name,
    dates.is_holiday                                        as is_chain_holiday,
    store_calendar.holiday_name is not null                 as is_regional_holiday,
    store_calendar.holiday_name                             as regional_holiday_name,
    {{ any_in_demand_period('coalesce(store_calendar.school_holiday, false)', 'stores.store_id', 'dates.date') }}
                                                            as school_holiday,
    dates.event_name,
    store_calendar.event_name                               as store_event_name,
    {{ any_in_demand_period(
        'dates.is_event_day or store_calendar.event_name is not null', 'stores.store_id', 'dates.date'
    ) }}                                                    as is_event_day,
    store_calendar.store_id is not null                     as in_store_calendar,
    dates.date > data_end.sales_end_date                    as is_after_sales_end
from stores
cross join dates
cross join data_end
left join store_calendar
    on  store_calendar.store_id = stores.store_id
    and store_calendar.date = dates.date
