{#
  Values lie within [min_value, max_value] (inclusive; either bound may be omitted).
  NULLs pass: not_null says whether they may exist.
#}
{% test within_bounds(model, column_name, min_value=none, max_value=none) %}

select {{ column_name }}
from {{ model }}
where false
    {%- if min_value is not none %}
    or {{ column_name }} < {{ min_value }}
    {%- endif %}
    {%- if max_value is not none %}
    or {{ column_name }} > {{ max_value }}
    {%- endif %}

{% endtest %}
