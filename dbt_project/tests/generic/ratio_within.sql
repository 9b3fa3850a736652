{#
  The ratio of this column to another column of the same row stays within bounds, e.g. a selling
  price at most 3x the list price: column_name / denominator <= max_ratio (and >= min_ratio when
  given). Rows with a NULL or non-positive denominator are not judged.
#}
{% test ratio_within(model, column_name, denominator, max_ratio=none, min_ratio=none) %}

select
    {{ column_name }},
    {{ denominator }},
    {{ column_name }} / {{ denominator }} as ratio
from {{ model }}
where {{ denominator }} > 0
  and (
      false
      {%- if max_ratio is not none %}
      or {{ column_name }} / {{ denominator }} > {{ max_ratio }}
      {%- endif %}
      {%- if min_ratio is not none %}
      or {{ column_name }} / {{ denominator }} < {{ min_ratio }}
      {%- endif %}
  )

{% endtest %}
