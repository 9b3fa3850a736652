-- Stores (the online shop is one of them), one row per store_id.
with source as (

    select * from {{ source('raw', 'stores') }}

),

typed as (

    select
        trim(store_id)                 as store_id,
        trim(store_name)               as store_name,
        trim(region)                   as region,
        -- "format" is also a SQL function name; store_format reads unambiguously downstream.
        lower(trim(format))            as store_format,
        trim(city)                     as city,
        cast(opened_date as date)      as opened_date,
        cast(size_sqm as double)       as size_sqm
    from source

),

deduplicated as (

    -- No load timestamp in the feed: keep the most recently opened record, then a full-row tie-break.
    select *
    from typed
    qualify row_number() over (
        partition by store_id
        order by opened_date desc, store_name, region, store_format, city, size_sqm desc
    ) = 1

)

select
    *,
    store_format = 'online' as is_online
from deduplicated
