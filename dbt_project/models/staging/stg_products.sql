-- Product catalog, one row per SKU: ids and hierarchy trimmed, enumerations left as given
-- (department/category names are display values), cost and dates typed.
with source as (

    select * from {{ source('raw', 'products') }}

),

typed as (

    select
        trim(sku)                            as sku,
        trim(department)                     as department,
        trim(category)                       as category,
        trim(subcategory)                    as subcategory,
        trim(brand)                          as brand,
        trim(title)                          as title,
        trim(description)                    as description,
        nullif(trim(color), '')              as color,
        nullif(trim(material), '')           as material,
        nullif(trim(sizes), '')              as sizes,
        cast(waterproof as boolean)          as is_waterproof,
        attributes                           as attributes_json,
        cast(unit_cost as double)            as unit_cost,
        cast(list_price as double)           as list_price,
        cast(launch_date as date)            as launch_date,
        cast(discontinued_date as date)      as discontinued_date
    from source

),

deduplicated as (

    -- The feed carries no load timestamp, so "latest" means the most recent catalog entry:
    -- the latest launch date wins; the remaining columns only break ties so the kept row never
    -- depends on physical row order.
    select *
    from typed
    qualify row_number() over (
        partition by sku
        order by launch_date desc nulls last, discontinued_date desc nulls first,
                 list_price desc, unit_cost desc nulls last, title, description, attributes_json
    ) = 1

)

select
    *,
    -- Unit margin at list price; NULL when the catalog does not know the cost.
    list_price - unit_cost as list_unit_margin
from deduplicated
