-- Per-store calendar, one row per (store_id, date) the feed lists: planned opening, regional
-- public holiday, school holiday and local event. The feed is optional and may be sparse (only
-- the days that differ from the chain calendar); marts/dim_store_dates fills in every other
-- store-day from the chain calendar.
with source as (

    select * from {{ source('raw', 'store_calendar') }}

),

typed as (

    select
        trim(store_id)                              as store_id,
        cast(date as date)                          as date,
        cast(is_open as boolean)                    as is_open,
        nullif(trim(holiday_name), '')              as holiday_name,
        cast(school_holiday as boolean)             as school_holiday,
        -- Local event names are compared and counted downstream, so normalise them.
        nullif(lower(trim(event_name)), '')         as event_name
    from source

),

deduplicated as (

    -- A store-day listed twice keeps the more restrictive record: a planned closure wins, then
    -- the record that names a holiday / school holiday / event.
    select *
    from typed
    qualify row_number() over (
        partition by store_id, date
        order by is_open asc nulls last, holiday_name nulls last,
                 school_holiday desc nulls last, event_name nulls last
    ) = 1

)

select * from deduplicated
