-- Customer features as of the end of the data. Grain: customer_id (every loyalty customer, with
-- zero counts for those without payments or sessions).
-- RFM comes from payments, behaviour from the sessionised clickstream.
with customers as (

    select * from {{ ref('dim_customers') }}

),

payments as (

    select customer_id, transaction_ts, amount, top_department
    from {{ ref('stg_payments') }}

),

payment_rfm as (

    select
        customer_id,
        count(*)                                                                as frequency,
        sum(amount)                                                             as monetary,
        avg(amount)                                                             as avg_amount,
        min(transaction_ts)                                                     as first_payment_ts,
        max(transaction_ts)                                                     as last_payment_ts
    from payments
    group by customer_id

),

payment_recent as (

    -- Last 90 days of the data: how active the customer is now, not over their whole life.
    select
        payments.customer_id,
        count(*)            as frequency_90d,
        sum(payments.amount) as monetary_90d
    from payments
    cross join {{ ref('int_data_end') }} as data_end
    where cast(payments.transaction_ts as date) > data_end.data_end_date - 90
    group by payments.customer_id

),

favourite_department as (

    -- Department the customer's baskets are most often led by; ties go to the larger spend,
    -- then alphabetically, so the choice is stable.
    select customer_id, department as favourite_department
    from (
        select customer_id, top_department as department, count(*) as n, sum(amount) as spend
        from payments
        group by customer_id, top_department
    )
    qualify row_number() over (partition by customer_id order by n desc, spend desc, department) = 1

),

session_behaviour as (

    select
        customer_id,
        count(*)                                    as sessions,
        sum(n_impressions)                          as impressions,
        sum(n_clicks)                               as clicks,
        sum(n_add_to_carts)                         as add_to_carts,
        sum(n_purchases)                            as purchases,
        count(*) filter (where has_purchase)        as purchasing_sessions,
        max(session_start_ts)                       as last_session_ts
    from {{ ref('int_sessions') }}
    where customer_id is not null
    group by customer_id

),

favourite_category as (

    -- Category the customer engaged with most online (purchases count double, as in co-occurrence).
    select customer_id, category as favourite_category
    from (
        select
            items.customer_id,
            products.category,
            sum(items.engagement_weight) as engagement
        from {{ ref('int_session_items') }} as items
        inner join {{ ref('stg_products') }} as products on items.sku = products.sku
        where items.customer_id is not null
        group by items.customer_id, products.category
    )
    qualify row_number() over (partition by customer_id order by engagement desc, category) = 1

)

select
    customers.customer_id,
    customers.segment,
    customers.region,
    customers.home_store_id,
    customers.signup_date,
    customers.tenure_days,
    customers.as_of_date,

    -- RFM from payments
    customers.as_of_date - cast(payment_rfm.last_payment_ts as date)   as recency_days,
    coalesce(payment_rfm.frequency, 0)                                  as frequency,
    coalesce(payment_rfm.monetary, 0)                                   as monetary,
    payment_rfm.avg_amount,
    coalesce(payment_recent.frequency_90d, 0)                           as frequency_90d,
    coalesce(payment_recent.monetary_90d, 0)                            as monetary_90d,
    payment_rfm.first_payment_ts,
    payment_rfm.last_payment_ts,
    favourite_department.favourite_department,

    -- online behaviour from the clickstream
    coalesce(session_behaviour.sessions, 0)                             as sessions,
    coalesce(session_behaviour.impressions, 0)                          as impressions,
    coalesce(session_behaviour.clicks, 0)                               as clicks,
    coalesce(session_behaviour.add_to_carts, 0)                         as add_to_carts,
    coalesce(session_behaviour.purchases, 0)                            as purchases,
    -- Rates are NULL without a denominator: "never saw an impression" is not a 0 % CTR.
    session_behaviour.clicks / nullif(session_behaviour.impressions, 0) as click_through_rate,
    session_behaviour.purchasing_sessions / nullif(session_behaviour.sessions, 0)
                                                                        as session_conversion_rate,
    customers.as_of_date - cast(session_behaviour.last_session_ts as date)
                                                                        as days_since_last_session,
    favourite_category.favourite_category
from customers
left join payment_rfm on customers.customer_id = payment_rfm.customer_id
left join payment_recent on customers.customer_id = payment_recent.customer_id
left join favourite_department on customers.customer_id = favourite_department.customer_id
left join session_behaviour on customers.customer_id = session_behaviour.customer_id
left join favourite_category on customers.customer_id = favourite_category.customer_id
