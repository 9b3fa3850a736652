{#
  Every row fills at least one of `columns` (e.g. a sales row reports units, sales value or both:
  contracts.SALES.at_least_one_of). Fails with the rows where all of them are NULL.
#}
{% test at_least_one_not_null(model, columns) %}

select *
from {{ model }}
where coalesce({{ columns | join(', ') }}) is null

{% endtest %}
