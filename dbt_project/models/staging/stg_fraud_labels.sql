-- Fraud outcome per transaction, one row per transaction_id. The label is only knowable from
-- label_available_at on; consumers filter on it, staging keeps every label.
with source as (

    select * from {{ source('raw', 'fraud_labels') }}

),

typed as (

    select
        trim(transaction_id)                    as transaction_id,
        cast(is_fraud as boolean)               as is_fraud,
        nullif(lower(trim(fraud_type)), '')     as fraud_type,
        lower(trim(label_source))               as label_source,
        cast(label_available_at as timestamp)   as label_available_at
    from source

),

deduplicated as (

    -- A transaction relabelled later (e.g. a chargeback after an investigation) keeps the latest
    -- label: it is the business's most recent knowledge. On a tie a fraud verdict wins.
    select *
    from typed
    qualify row_number() over (
        partition by transaction_id
        order by label_available_at desc, is_fraud desc, label_source, fraud_type nulls last
    ) = 1

)

select * from deduplicated
