{# Two columns of a row never hold the same value (e.g. an item is not its own partner). #}
{% test columns_differ(model, column_name, other_column) %}

select {{ column_name }}, {{ other_column }}
from {{ model }}
where {{ column_name }} = {{ other_column }}

{% endtest %}
