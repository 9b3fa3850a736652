-- Product dimension, one row per SKU: catalog attributes plus margin, price band and the SKU's
-- life cycle as of the end of the sales data.
with products as (

    select * from {{ ref('stg_products') }}

),

data_end as (

    select sales_end_date as as_of_date from {{ ref('int_data_end') }}

),

sales_span as (

    select sku, min(date) as first_sale_date, max(date) as last_sale_date
    from {{ ref('stg_sales') }}
    group by sku

),

priced as (

    select
        products.*,
        -- Terciles of list price within the category: "premium" means premium for its shelf,
        -- so a cheap TV is not banded with expensive socks.
        cume_dist() over (partition by category order by list_price) as category_price_rank
    from products

),

life_cycle as (

    select
        priced.*,
        sales_span.first_sale_date,
        sales_span.last_sale_date,
        data_end.as_of_date,
        -- Launch unknown in some real catalogs: the first recorded sale stands in for it.
        coalesce(priced.launch_date, sales_span.first_sale_date)                    as effective_launch_date,
        least(coalesce(priced.discontinued_date, data_end.as_of_date), data_end.as_of_date)
                                                                                    as on_sale_until_date
    from priced
    left join sales_span on priced.sku = sales_span.sku
    cross join data_end

)

select
    sku,
    department,
    category,
    subcategory,
    brand,
    title,
    description,
    color,
    material,
    sizes,
    is_waterproof,
    attributes_json,
    unit_cost,
    list_price,
    list_unit_margin,
    -- Gross margin at list price as a share of it; NULL when cost is unknown.
    list_unit_margin / nullif(list_price, 0)                                as list_margin_pct,
    case
        when category_price_rank <= 1.0 / 3 then 'low'
        when category_price_rank <= 2.0 / 3 then 'mid'
        else 'high'
    end                                                                     as price_band,
    launch_date,
    discontinued_date,
    first_sale_date,
    last_sale_date,
    effective_launch_date,
    as_of_date,
    discontinued_date is not null and discontinued_date < as_of_date        as is_discontinued,
    (effective_launch_date is null or effective_launch_date <= as_of_date)
        and (discontinued_date is null or discontinued_date >= as_of_date)  as is_active,
    -- Days the SKU has been (or was) on sale up to the data end; 0 before its launch.
    greatest(on_sale_until_date - effective_launch_date + 1, 0)             as days_on_sale
from life_cycle
