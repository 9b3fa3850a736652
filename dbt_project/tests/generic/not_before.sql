{#
  A timestamp never precedes another timestamp of the same row (e.g. a fraud label cannot be known
  before the payment it is about). NULLs pass.
#}
{% test not_before(model, column_name, other_column) %}

select {{ column_name }}, {{ other_column }}
from {{ model }}
where {{ column_name }} < {{ other_column }}

{% endtest %}
