-- Online behaviour events, one row per event_id.
with source as (

    select * from {{ source('raw', 'clickstream') }}

),

typed as (

    select
        trim(event_id)                      as event_id,
        cast(event_ts as timestamp)         as event_ts,
        cast(event_ts as date)              as event_date,
        trim(session_id)                    as session_id,
        nullif(trim(customer_id), '')       as customer_id,
        trim(sku)                           as sku,
        lower(trim(event_type))             as event_type,
        lower(trim(page))                   as page,
        -- "position" is a SQL function name; the slot on the page is what it means.
        cast(position as integer)           as slot_position,
        lower(trim(channel))                as channel
    from source

),

deduplicated as (

    -- A replayed event keeps its first occurrence (earliest timestamp); the rest break ties.
    select *
    from typed
    qualify row_number() over (
        partition by event_id
        order by event_ts, session_id, customer_id nulls last, sku, event_type, page,
                 slot_position nulls last, channel
    ) = 1

)

select * from deduplicated
