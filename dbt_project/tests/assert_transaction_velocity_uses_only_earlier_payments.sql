-- Card velocity in transaction_features must equal a plain recount over STRICTLY earlier payments
-- of the same card (a payment never counts itself, nor a payment at the same instant). Checked on
-- a fixed ~5 % sample of cards to stay cheap. Returns the offending payments.
{{ config(severity='error', meta={'dagster': {'ref': {'name': 'transaction_features'}}}) }}

with sampled_payments as (

    select transaction_id, card_id, transaction_ts, amount
    from {{ ref('stg_payments') }}
    where hash(card_id) % 20 = 0

),

recomputed as (

    select
        current_payment.transaction_id,
        count(earlier.transaction_id) filter (
            where earlier.transaction_ts >= current_payment.transaction_ts - interval 1 hour
        )                                                                   as txn_count_1h,
        count(earlier.transaction_id)                                       as txn_count_7d,
        coalesce(sum(earlier.amount), 0)                                    as amount_7d
    from sampled_payments as current_payment
    left join sampled_payments as earlier
        on  earlier.card_id = current_payment.card_id
        and earlier.transaction_ts < current_payment.transaction_ts
        and earlier.transaction_ts >= current_payment.transaction_ts - interval 7 days
    group by current_payment.transaction_id

)

select
    features.transaction_id,
    features.card_txn_count_1h,
    recomputed.txn_count_1h,
    features.card_txn_count_7d,
    recomputed.txn_count_7d,
    features.card_amount_7d,
    recomputed.amount_7d
from {{ ref('transaction_features') }} as features
inner join recomputed on features.transaction_id = recomputed.transaction_id
where features.card_txn_count_1h <> recomputed.txn_count_1h
   or features.card_txn_count_7d <> recomputed.txn_count_7d
   or abs(features.card_amount_7d - recomputed.amount_7d) > 1e-6
