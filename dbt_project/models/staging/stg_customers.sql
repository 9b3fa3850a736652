-- Loyalty customers, one row per customer_id.
with source as (

    select * from {{ source('raw', 'customers') }}

),

typed as (

    select
        trim(customer_id)            as customer_id,
        lower(trim(segment))         as segment,
        trim(region)                 as region,
        trim(home_store_id)          as home_store_id,
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
        order by signup_date desc, segment, region, home_store_id
    ) = 1

)

select * from deduplicated
