-- Customer dimension, one row per loyalty customer: segment, region, home store and tenure at
-- the end of the data.
with customers as (

    select * from {{ ref('stg_customers') }}

),

stores as (

    select store_id, store_name, region, store_format from {{ ref('stg_stores') }}

),

data_end as (

    select data_end_date as as_of_date from {{ ref('int_data_end') }}

)

select
    customers.customer_id,
    customers.segment,
    customers.region,
    customers.home_store_id,
    stores.store_name                               as home_store_name,
    stores.region                                   as home_store_region,
    stores.store_format                             as home_store_format,
    customers.signup_date,
    data_end.as_of_date,
    data_end.as_of_date - customers.signup_date     as tenure_days
from customers
cross join data_end
left join stores on customers.home_store_id = stores.store_id
