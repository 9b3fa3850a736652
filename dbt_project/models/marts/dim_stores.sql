-- Store dimension, one row per store (the online shop included).
with stores as (

    select * from {{ ref('stg_stores') }}

),

data_end as (

    select sales_end_date as as_of_date from {{ ref('int_data_end') }}

),

home_customers as (

    select home_store_id as store_id, count(*) as n_home_customers
    from {{ ref('stg_customers') }}
    group by home_store_id

)

select
    stores.store_id,
    stores.store_name,
    stores.region,
    stores.store_format,
    stores.is_online,
    stores.city,
    stores.opened_date,
    stores.size_sqm,
    data_end.as_of_date,
    -- Age of the store at the end of the data; negative would mean "opens later" and is kept.
    data_end.as_of_date - stores.opened_date                as days_open,
    coalesce(home_customers.n_home_customers, 0)            as n_home_customers
from stores
cross join data_end
left join home_customers on stores.store_id = home_customers.store_id
