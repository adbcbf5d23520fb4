// PromQL pieces every rule and panel shares, so the first-occurrence rule is written once.
{
  // Label selector of our event counter: the job plus `extra` (PromQL matchers, may be empty).
  events(config, extra)::
    'kube_events_total{%s}' % std.join(',', [config.jobSelector] + (if extra == '' then [] else [extra])),

  // Occurrences per series in the trailing `window`, including a series' first sample.
  // increase() cannot see the value a series is born with (it has no earlier sample), so a series
  // younger than the window (`x unless x offset W`) contributes its whole value and older ones
  // their increase, which also absorbs counter resets. The exporter starts every series at 0
  // after a restart, so a reappearing series never counts history twice.
  occurrences(series, window)::
    local born = '(%s unless %s offset %s)' % [series, series, window];
    '(increase(%s[%s]) unless %s)\nor\n%s' % [series, window, born, born],

  // Seconds in a duration of one unit, such as '5m'.
  seconds(duration)::
    local unit = duration[std.length(duration) - 1];
    std.parseInt(duration[:std.length(duration) - 1]) * { s: 1, m: 60, h: 3600 }[unit],

  // `sum by (labels)` of an expression spanning several lines, indented.
  sumBy(labels, expr)::
    'sum by (%s) (\n%s\n)' % [std.join(', ', labels), std.join('\n', ['  ' + line for line in std.split(expr, '\n')])],
}
