-- Card payments with their fraud labels: the input of the fraud training set. Grain:
-- transaction_id.
--
-- No behavioural features here. Velocity per card / customer / device, first device use, cards
-- per shipping address, the customer's prior spend, tenure, time and geography flags are
-- defined once, in Python (retail_assets/models/fraud/online.py, FraudFeatureState): serving
-- computes them per request from the payments seen so far, and the training set replays this
-- table through the same class. A second definition here could only drift from the one that
-- scores live payments. This model keeps every column that replay needs (ids, timestamp,
-- amount, shipping address, countries) and the raw fields the model reads as they are.
--
-- Labels (is_fraud, fraud_type, label_source, label_available_at) are joined as they are, with
-- no cut-off: a label is only known from label_available_at on, and training sets filter on it
-- for their own as-of time. Payments without a label yet have NULL label columns.
with payments as (

    select * from {{ ref('stg_payments') }}

),

labels as (

    select transaction_id, is_fraud, fraud_type, label_source, label_available_at
    from {{ ref('stg_fraud_labels') }}

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

    -- labels, unfiltered (see header)
    labels.is_fraud,
    labels.fraud_type,
    labels.label_source,
    labels.label_available_at
from payments
left join labels on payments.transaction_id = labels.transaction_id
