{# No negative values (quantities, amounts, counts). NULLs pass: not_null says whether they may exist. #}
{% test non_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
