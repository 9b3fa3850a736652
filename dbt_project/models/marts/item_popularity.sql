-- Item popularity at the end of the data. Grain: sku (every catalog SKU).
-- Online funnel counts over the last 7 / 30 / 90 days of the clickstream (windows end at the
-- clickstream's last day, inclusive) and store units over the last 28 days of the sales feed.
with products as (

    select sku from {{ ref('stg_products') }}

),

data_end as (

    select clickstream_end_date, sales_end_date from {{ ref('int_data_end') }}

),

recent_events as (

    select
        events.sku,
        events.event_type,
        data_end.clickstream_end_date - events.event_date as days_ago
    from {{ ref('stg_clickstream') }} as events
    cross join data_end
    where events.event_date > data_end.clickstream_end_date - 90

),

funnel as (

    select
        sku,
        {%- for days in [7, 30, 90] %}
        {%- set last_window = loop.last %}
        {%- for event_type, column in [('impression', 'impressions'), ('click', 'clicks'),
                                        ('add_to_cart', 'add_to_carts'), ('purchase', 'purchases')] %}
        count(*) filter (where event_type = '{{ event_type }}' and days_ago < {{ days }})
            as {{ column }}_{{ days }}d{{ '' if (last_window and loop.last) else ',' }}
        {%- endfor %}
        {%- endfor %}
    from recent_events
    group by sku

),

store_units as (

    select sales.sku, sum(sales.units_sold) as units_sold_28d
    from {{ ref('stg_sales') }} as sales
    cross join data_end
    where sales.date > data_end.sales_end_date - 28
    group by sales.sku

),

combined as (

    select
        products.sku,
        {%- for days in [7, 30, 90] %}
        {%- for column in ['impressions', 'clicks', 'add_to_carts', 'purchases'] %}
        coalesce(funnel.{{ column }}_{{ days }}d, 0) as {{ column }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        coalesce(store_units.units_sold_28d, 0) as units_sold_28d
    from products
    left join funnel on products.sku = funnel.sku
    left join store_units on products.sku = store_units.sku

)

select
    *,
    {%- for days in [7, 30, 90] %}
    -- NULL without impressions / clicks: no exposure is not a 0 % rate.
    clicks_{{ days }}d / nullif(impressions_{{ days }}d, 0)    as click_through_rate_{{ days }}d,
    purchases_{{ days }}d / nullif(clicks_{{ days }}d, 0)      as conversion_rate_{{ days }}d,
    {%- endfor %}
    -- 1 = most popular: recent online purchases first, then store units, then clicks; sku breaks
    -- ties so the rank is unique and stable.
    row_number() over (
        order by purchases_30d desc, units_sold_28d desc, clicks_30d desc, sku
    )                                                       as popularity_rank
from combined
