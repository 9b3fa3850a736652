-- Fraud features per card payment. Grain: transaction_id.
--
-- Leakage: every behavioural feature uses only transactions STRICTLY EARLIER than this one.
-- Windows are RANGE frames on the timestamp with EXCLUDE GROUP, which drops the current row
-- and every row with the same timestamp: two authorisations in the same microsecond cannot be
-- ordered reliably, so neither may see the other (the conservative choice; a row-number
-- tie-break would let one of them see a "later" payment). Window bounds are inclusive: a payment
-- exactly one hour earlier is in the 1-hour window.
--
-- Labels (is_fraud, fraud_type, label_source, label_available_at) are joined as they are, with
-- no cut-off: a label is only known from label_available_at on, and training sets filter on it
-- for their own as-of time. Payments without a label yet have NULL label columns.
with payments as (

    select * from {{ ref('stg_payments') }}

),

customers as (

    select customer_id, signup_date from {{ ref('stg_customers') }}

),

labels as (

    select transaction_id, is_fraud, fraud_type, label_source, label_available_at
    from {{ ref('stg_fraud_labels') }}

),

address_cards as (

    -- Distinct cards used at this shipping address in the 7 days up to this payment. This one
    -- counts the current payment's own card (EXCLUDE TIES keeps the current row and drops only
    -- same-timestamp peers): the card is known at authorisation, and "the 4th card on this address
    -- this week" is the signal. Payments without an address (in store) are left out before the
    -- window: as one giant NULL partition they would make the distinct count quadratic.
    select
        transaction_id,
        count(distinct card_id) over (
            partition by shipping_address_id order by transaction_ts
            range between interval 7 days preceding and current row exclude ties
        ) as ship_address_distinct_cards_7d
    from payments
    where shipping_address_id is not null

),

velocity as (

    select
        transaction_id,
        {%- for entity in ['card', 'customer', 'device'] %}
        {%- for label, width in [('1h', '1 hour'), ('24h', '24 hours'), ('7d', '7 days')] %}
        count(*) over (
            partition by {{ entity }}_id order by transaction_ts
            range between interval {{ width }} preceding and current row exclude group
        )                                                           as {{ entity }}_txn_count_{{ label }},
        coalesce(sum(amount) over (
            partition by {{ entity }}_id order by transaction_ts
            range between interval {{ width }} preceding and current row exclude group
        ), 0)                                                       as {{ entity }}_amount_{{ label }},
        {%- endfor %}
        {%- endfor %}

        -- The customer's history before this payment.
        count(*) over customer_history                              as customer_prior_txn_count,
        avg(amount) over customer_history                           as customer_prior_avg_amount,

        -- First payment from this device on this account (no strictly earlier one).
        count(*) over (
            partition by customer_id, device_id order by transaction_ts
            range between unbounded preceding and current row exclude group
        ) = 0                                                       as is_first_device_use_for_customer
    from payments
    window customer_history as (
        partition by customer_id order by transaction_ts
        range between unbounded preceding and current row exclude group
    )

)

select
    payments.transaction_id,
    payments.transaction_ts,
    payments.transaction_date,
    payments.customer_id,
    payments.card_id,
    payments.device_id,
    payments.channel,
    payments.store_id,
    payments.amount,
    payments.currency,
    payments.n_items,
    payments.top_department,
    payments.payment_method,
    payments.billing_country,
    payments.shipping_country,
    payments.ip_country,
    payments.shipping_address_id,

    -- time of the payment
    hour(payments.transaction_ts)                                       as hour_of_day,
    isodow(payments.transaction_ts)                                     as day_of_week,

    -- velocity per card, customer and device (strictly earlier payments)
    {%- for entity in ['card', 'customer', 'device'] %}
    {%- for label in ['1h', '24h', '7d'] %}
    velocity.{{ entity }}_txn_count_{{ label }},
    velocity.{{ entity }}_amount_{{ label }},
    {%- endfor %}
    {%- endfor %}
    velocity.is_first_device_use_for_customer,
    address_cards.ship_address_distinct_cards_7d,

    -- geography
    payments.billing_country <> payments.ip_country                     as is_billing_ip_country_mismatch,
    payments.billing_country <> payments.shipping_country               as is_billing_shipping_country_mismatch,

    -- amount against the customer's own history (NULL without history)
    velocity.customer_prior_txn_count,
    velocity.customer_prior_avg_amount,
    payments.amount / nullif(velocity.customer_prior_avg_amount, 0)     as amount_to_customer_avg_ratio,

    -- account age at the payment
    cast(payments.transaction_date - customers.signup_date as integer)  as customer_tenure_days,

    -- labels, unfiltered (see header)
    labels.is_fraud,
    labels.fraud_type,
    labels.label_source,
    labels.label_available_at
from payments
inner join velocity on payments.transaction_id = velocity.transaction_id
left join address_cards on payments.transaction_id = address_cards.transaction_id
left join customers on payments.customer_id = customers.customer_id
left join labels on payments.transaction_id = labels.transaction_id
