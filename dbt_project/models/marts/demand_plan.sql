-- Promotion and price plan per store, SKU and day. Grain: store_id x sku x date, for the days
-- the promotion_plan feed covers (history and ahead; days outside it are regular-price days
-- with no promotion planned).
--
-- Each plan row is expanded to the days start_date .. end_date; a chain-wide row (store_id
-- NULL) applies to every store. Where several rows cover the same store-SKU-day:
--   1. a store's own row overrides the chain-wide one (e.g. a store opting out of a promotion);
--   2. among rows of the same scope, the one that started last wins (a later plan revises an
--      earlier one), then the shorter range, then the deeper discount.
-- The planned price is the plan's, else the catalog list price less the planned discount.
--
-- Past days: demand_features takes the realised price and promotion from the sales feed (the
-- actuals win) and fills from the plan only what the feed does not record; it carries the
-- plan's own columns as planned_* beside them. Future days: the plan is all there is.
with plan as (

    select * from {{ ref('stg_promotion_plan') }}

),

stores as (

    select store_id from {{ ref('stg_stores') }}

),

products as (

    select sku, list_price from {{ ref('stg_products') }}

),

data_end as (

    select sales_end_date from {{ ref('int_data_end') }}

),

scoped as (

    -- Chain-wide rows to every store, store rows as they are.
    select
        coalesce(plan.store_id, stores.store_id)            as store_id,
        plan.sku,
        plan.start_date,
        plan.end_date,
        plan.planned_price,
        plan.discount_pct,
        plan.promo_type,
        plan.on_promotion,
        case when plan.store_id is null then 'chain' else 'store' end
                                                            as plan_scope
    from plan
    inner join stores
        on plan.store_id is null or plan.store_id = stores.store_id

),

expanded as (

    select
        scoped.store_id,
        scoped.sku,
        cast(unnest(generate_series(scoped.start_date, scoped.end_date, interval 1 day)) as date)
                                                            as date,
        scoped.planned_price,
        scoped.discount_pct,
        scoped.promo_type,
        scoped.on_promotion,
        scoped.plan_scope,
        scoped.start_date                                   as plan_start_date,
        scoped.end_date                                     as plan_end_date
    from scoped

),

chosen as (

    select *
    from expanded
    qualify row_number() over (
        partition by store_id, sku, date
        order by plan_scope = 'store' desc, plan_start_date desc, plan_end_date asc,
                 discount_pct desc nulls last, planned_price nulls last, promo_type nulls last
    ) = 1

)

select
    chosen.store_id,
    chosen.sku,
    chosen.date,
    coalesce(
        chosen.planned_price,
        round(products.list_price * (1 - coalesce(chosen.discount_pct, 0)), 2)
    )                                                       as planned_price,
    chosen.planned_price is null                            as is_price_derived,
    coalesce(chosen.discount_pct, 0)                        as discount_pct,
    chosen.on_promotion,
    chosen.promo_type,
    coalesce(chosen.planned_price,
             round(products.list_price * (1 - coalesce(chosen.discount_pct, 0)), 2))
        / nullif(products.list_price, 0)                    as planned_price_ratio,
    chosen.plan_scope,
    chosen.plan_start_date,
    chosen.plan_end_date,
    chosen.date > data_end.sales_end_date                   as is_after_sales_end
from chosen
cross join data_end
left join products on chosen.sku = products.sku
