-- Customer-facing policies and FAQs, one row per doc_id: the latest version of each document.
with source as (

    select * from {{ source('raw', 'policy_documents') }}

),

typed as (

    select
        trim(doc_id)                    as doc_id,
        lower(trim(doc_type))           as doc_type,
        trim(title)                     as title,
        body,
        cast(effective_date as date)    as effective_date,
        cast(version as integer)        as policy_version
    from source

),

deduplicated as (

    -- The contract key is doc_id; a feed holding several versions keeps the newest one
    -- (highest version, then latest effective date) — that is the policy in force.
    select *
    from typed
    qualify row_number() over (
        partition by doc_id
        order by policy_version desc, effective_date desc, title, body
    ) = 1

)

select
    *,
    length(body) as body_chars
from deduplicated
