-- Where the data ends, per event feed and overall. Marts computed "as of the data end" (dimension
-- ages, customer recency, popularity windows) read their reference point here rather than
-- current_date, so rebuilding old data gives the same answer. Grain: one row.
with sales_end as (

    select max(date) as sales_end_date from {{ ref('stg_sales') }}

),

payments_end as (

    select max(transaction_ts) as payments_end_ts from {{ ref('stg_payments') }}

),

clickstream_end as (

    select max(event_ts) as clickstream_end_ts from {{ ref('stg_clickstream') }}

)

select
    sales_end_date,
    payments_end_ts,
    clickstream_end_ts,
    cast(clickstream_end_ts as date)                                        as clickstream_end_date,
    greatest(sales_end_date, cast(payments_end_ts as date), cast(clickstream_end_ts as date))
                                                                            as data_end_date
from sales_end
cross join payments_end
cross join clickstream_end
