-- Card payment authorisations, one row per transaction_id.
with source as (

    select * from {{ source('raw', 'payments') }}

),

typed as (

    select
        trim(transaction_id)                as transaction_id,
        -- Renamed from event_ts: downstream joins mix payment, click and label timestamps.
        cast(event_ts as timestamp)         as transaction_ts,
        trim(customer_id)                   as customer_id,
        trim(card_id)                       as card_id,
        trim(device_id)                     as device_id,
        lower(trim(channel))                as channel,
        nullif(trim(store_id), '')          as store_id,
        cast(amount as double)              as amount,
        upper(trim(currency))               as currency,
        cast(n_items as integer)            as n_items,
        trim(top_department)                as top_department,
        lower(trim(payment_method))         as payment_method,
        upper(trim(billing_country))        as billing_country,
        upper(trim(shipping_country))       as shipping_country,
        upper(trim(ip_country))             as ip_country,
        nullif(trim(shipping_address_id), '') as shipping_address_id
    from source

),

deduplicated as (

    -- A re-sent authorisation keeps its first occurrence (earliest timestamp); the rest break ties.
    select *
    from typed
    qualify row_number() over (
        partition by transaction_id
        order by transaction_ts, amount desc, customer_id, card_id, device_id, channel
    ) = 1

)

select
    *,
    cast(transaction_ts as date) as transaction_date
from deduplicated
