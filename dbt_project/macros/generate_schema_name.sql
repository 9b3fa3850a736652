{#
  Models land in exactly the schema they configure (staging, intermediate, marts), not dbt's
  default "<target schema>_<custom schema>" (main_staging): Dagster asset keys and the Python
  readers address tables as staging.stg_sales, marts.demand_features, ...
  Models without a custom schema fall back to the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
