-- Stores (the online shop is one of them), one row per store_id. The format is the retailer's
-- own word (any non-empty string, lower-cased); 'online' marks the online shop. Name, city,
-- opening date and size may be unknown (NULL).
with source as (

    select * from {{ source('raw', 'stores') }}

),

typed as (

    select
        trim(store_id)                 as store_id,
        nullif(trim(store_name), '')   as store_name,
        trim(region)                   as region,
        -- "format" is also a SQL function name; store_format reads unambiguously downstream.
        -- An empty string is no format (NULL), which the not_null test on the model stops.
        nullif(lower(trim(format)), '') as store_format,
        nullif(trim(city), '')         as city,
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
        order by opened_date desc nulls last, store_name nulls last, region, store_format,
                 city nulls last, size_sqm desc nulls last
    ) = 1

)

select
    *,
    coalesce(store_format = 'online', false) as is_online
from deduplicated
