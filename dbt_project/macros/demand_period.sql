{#
  The demand grain's period. RETAIL_DEMAND_GRAIN=week (retail_assets/settings.py) means the sales
  feed has one row per store x SKU x week, dated on the week's last day; a calendar flag of that
  date then has to describe the whole week (a week with a holiday in it is a holiday week, a
  store open on any day of it is open), or a Friday-dated week would only see Fridays' holidays.
  The daily grain (the default) leaves every flag as it is.
#}
{% macro demand_period_days() -%}
    {{ return(7 if env_var('RETAIL_DEMAND_GRAIN', 'day') == 'week' else 1) }}
{%- endmacro %}

{#- `expr` (a boolean of one day) over the demand period ending on `date`: true when it holds on
    any day of the period. A date range, not a row count, so gaps in a calendar cannot stretch
    the period. -#}
{% macro any_in_demand_period(expr, partition_by=none, order_by='date') -%}
    {%- if demand_period_days() > 1 -%}
    bool_or({{ expr }}) over (
        {% if partition_by %}partition by {{ partition_by }} {% endif -%}
        order by {{ order_by }}
        range between interval {{ demand_period_days() - 1 }} days preceding and current row
    )
    {%- else -%}
    {{ expr }}
    {%- endif -%}
{%- endmacro %}
