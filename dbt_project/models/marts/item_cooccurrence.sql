-- Items engaged with in the same session ("bought / viewed together"). Grain: sku_a x sku_b with
-- sku_a != sku_b, both directions present, top 50 partners per sku_a by weighted score.
--
-- A session "has" a SKU when it clicked, carted or bought it (impressions are not engagement).
-- weighted_score sums, over shared sessions, the weaker of the two engagements (purchase = 2,
-- click / cart = 1), so a pair bought together outranks a pair merely browsed together.
-- support = shared sessions / engaged sessions; lift = support / (support_a * support_b).
with session_items as (

    select session_id, sku, engagement_weight
    from {{ ref('int_session_items') }}

),

sessions_total as (

    select count(distinct session_id) as n_sessions from session_items

),

item_sessions as (

    select sku, count(*) as n_sessions_with_sku from session_items group by sku

),

pairs as (

    select
        a.sku                                               as sku_a,
        b.sku                                               as sku_b,
        count(*)                                            as n_sessions_together,
        sum(least(a.engagement_weight, b.engagement_weight)) as weighted_score
    from session_items as a
    inner join session_items as b
        on  a.session_id = b.session_id
        and a.sku <> b.sku
    group by a.sku, b.sku

),

scored as (

    select
        pairs.sku_a,
        pairs.sku_b,
        pairs.n_sessions_together,
        pairs.weighted_score,
        item_a.n_sessions_with_sku                                  as n_sessions_a,
        item_b.n_sessions_with_sku                                  as n_sessions_b,
        pairs.n_sessions_together / sessions_total.n_sessions       as support,
        -- Share of sku_a's sessions that also engaged with sku_b.
        pairs.n_sessions_together / item_a.n_sessions_with_sku      as confidence,
        pairs.n_sessions_together * sessions_total.n_sessions
            / (item_a.n_sessions_with_sku * item_b.n_sessions_with_sku) as lift
    from pairs
    inner join item_sessions as item_a on pairs.sku_a = item_a.sku
    inner join item_sessions as item_b on pairs.sku_b = item_b.sku
    cross join sessions_total

)

select
    *,
    row_number() over (
        partition by sku_a
        order by weighted_score desc, lift desc, sku_b
    ) as partner_rank
from scored
qualify partner_rank <= 50
