-- Weekly end-of-day inventory snapshots, one row per (snapshot_date, store_id, sku).
with source as (

    select * from {{ source('raw', 'inventory') }}

),

typed as (

    select
        cast(snapshot_date as date)       as snapshot_date,
        trim(store_id)                    as store_id,
        trim(sku)                         as sku,
        cast(on_hand_units as integer)    as on_hand_units,
        cast(on_order_units as integer)   as on_order_units
    from source

),

deduplicated as (

    -- No load timestamp: keep the larger count deterministically (a resend is a recount).
    select *
    from typed
    qualify row_number() over (
        partition by snapshot_date, store_id, sku
        order by on_hand_units desc, on_order_units desc
    ) = 1

)

select
    *,
    on_hand_units = 0 as is_out_of_stock
from deduplicated
