{#
  The combination of `columns` identifies at most one row (a composite key).
  Fails with one row per duplicated key, with how often it occurs.
#}
{% test unique_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
