-- Loyalty customers, one row per customer_id. Segment (the retailer's own words, lower-cased),
-- region, home store and signup date may be unknown (NULL).
with source as (

    select * from {{ source('raw', 'customers') }}

),

typed as (

    select
        trim(customer_id)            as customer_id,
        nullif(lower(trim(segment)), '') as segment,
        nullif(trim(region), '')     as region,
        nullif(trim(home_store_id), '') as home_store_id,
        cast(signup_date as date)    as signup_date
    from source

),

deduplicated as (

    -- No load timestamp in the feed: the latest signup is the latest record of the account;
    -- the other columns only break ties deterministically.
    select *
    from typed
    qualify row_number() over (
        partition by customer_id
        order by signup_date desc nulls last, segment nulls last, region nulls last,
                 home_store_id nulls last
    ) = 1

)

select * from deduplicated
