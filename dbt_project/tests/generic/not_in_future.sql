{#
  A date or timestamp column holds nothing after now (UTC wall clock of the warehouse session).
  `allowed_skew` tolerates producers whose clock or day boundary runs ahead of ours (a store in a
  later time zone closes its day before UTC does).
#}
{% test not_in_future(model, column_name, allowed_skew='1 day') %}

select {{ column_name }}
from {{ model }}
where cast({{ column_name }} as timestamp)
      > cast(current_timestamp as timestamp) + interval '{{ allowed_skew }}'

{% endtest %}
