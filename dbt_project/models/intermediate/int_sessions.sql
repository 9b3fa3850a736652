-- Clickstream sessionised: one row per session_id with its funnel counts.
-- The feed already carries the session id the site assigned, so sessions are grouped on it rather
-- than re-cut by inactivity gaps.
with events as (

    select * from {{ ref('stg_clickstream') }}

)

select
    session_id,
    -- A session can start anonymous and log in midway; the logged-in id identifies it.
    min(customer_id)                                        as customer_id,
    arg_min(channel, event_ts)                              as channel,
    arg_min(page, event_ts)                                 as landing_page,
    min(event_ts)                                           as session_start_ts,
    max(event_ts)                                           as session_end_ts,
    cast(min(event_ts) as date)                             as session_date,
    date_diff('second', min(event_ts), max(event_ts))       as duration_seconds,
    count(*)                                                as n_events,
    count(distinct sku)                                     as n_distinct_skus,
    count(*) filter (where event_type = 'impression')       as n_impressions,
    count(*) filter (where event_type = 'click')            as n_clicks,
    count(*) filter (where event_type = 'add_to_cart')      as n_add_to_carts,
    count(*) filter (where event_type = 'purchase')         as n_purchases,
    count(*) filter (where event_type = 'purchase') > 0     as has_purchase
from events
group by session_id
