{#
  A date or timestamp column holds nothing after now: the RETAIL_NOW environment variable (an ISO
  timestamp, naive UTC; `retail simulate` sets it to the simulated night) or else the warehouse
  session's clock. `allowed_skew` tolerates producers whose clock or day boundary runs ahead of
  ours (a store in a later time zone closes its day before UTC does).
#}
{% test not_in_future(model, column_name, allowed_skew='1 day') %}

{%- set clock = env_var('RETAIL_NOW', '') -%}
select {{ column_name }}
from {{ model }}
where cast({{ column_name }} as timestamp)
      > {% if clock %}cast('{{ clock }}' as timestamp){% else %}cast(current_timestamp as timestamp){% endif %}
        + interval '{{ allowed_skew }}'

{% endtest %}
