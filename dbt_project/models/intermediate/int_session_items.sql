-- What each session did with each SKU it engaged with (clicked, carted or bought; impressions
-- alone are not engagement). Grain: session_id x sku. Feeds item co-occurrence and customers'
-- favourite categories.
with events as (

    select session_id, customer_id, sku, event_type, event_ts
    from {{ ref('stg_clickstream') }}
    where event_type in ('click', 'add_to_cart', 'purchase')

)

select
    session_id,
    sku,
    min(customer_id)                                        as customer_id,
    min(event_ts)                                           as first_engaged_ts,
    count(*) filter (where event_type = 'click')            as n_clicks,
    count(*) filter (where event_type = 'add_to_cart')      as n_add_to_carts,
    count(*) filter (where event_type = 'purchase')         as n_purchases,
    -- Strength of the engagement: a purchase says more about the pairing than a click or a cart.
    case
        when count(*) filter (where event_type = 'purchase') > 0 then 2.0
        else 1.0
    end                                                     as engagement_weight
from events
group by session_id, sku
