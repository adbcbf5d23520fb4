// The few Grafana shapes our dashboards use, as plain JSON (schema 39, Grafana 10 and later).
// Every query goes to the `datasource` variable, so nothing names a uid of someone's Grafana.
{
  datasource:: { type: 'prometheus', uid: '${datasource}' },

  datasourceVariable():: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    regex: '',
    options: [],
  },

  // A variable from label_values(); `multi` adds All (as `.*`, so it also matches an absent label).
  queryVariable(name, label, query, multi=true, hide=false):: {
    name: name,
    label: label,
    type: 'query',
    datasource: $.datasource,
    query: { query: query, refId: name + '-values' },
    definition: query,
    // On time-range change: values follow what the range holds.
    refresh: 2,
    sort: 1,
    hide: if hide then 2 else 0,
    regex: '',
    current: {},
    options: [],
    multi: multi,
    includeAll: multi,
    [if multi then 'allValue']: '.*',
  },

  target(expr, legend='', ref='A', instant=false, table=false, exemplar=false):: {
    datasource: $.datasource,
    expr: expr,
    legendFormat: legend,
    refId: ref,
    instant: instant,
    range: !instant,
    exemplar: exemplar,
    [if table then 'format']: 'table',
  },

  local panel(type, title, description, targets, unit) = {
    type: type,
    title: title,
    description: description,
    datasource: $.datasource,
    targets: targets,
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
  },

  // Sparse events read best as bars: one bar per interval, no line drawn between rare points.
  timeseries(title, description, targets, unit='short', bars=false, stack=false):: panel('timeseries', title, description, targets, unit) {
    fieldConfig+: { defaults+: { custom: {
      drawStyle: if bars then 'bars' else 'line',
      lineWidth: 1,
      fillOpacity: if bars then 80 else 10,
      showPoints: 'never',
      spanNulls: false,
      stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
    } } },
    options: {
      legend: { displayMode: 'table', placement: 'right', calcs: ['mean', 'max'], showLegend: true },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  stat(title, description, targets, unit='short', mappings=[]):: panel('stat', title, description, targets, unit) {
    fieldConfig+: { defaults+: { mappings: mappings } },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: if mappings == [] then 'value' else 'background',
      graphMode: if mappings == [] then 'area' else 'none',
      textMode: 'auto',
    },
  },

  // A stat's value -> text and colour, for 0/1 gauges such as synced and leader.
  valueMapping(texts):: [{
    type: 'value',
    options: { [value]: { text: texts[value][0], color: texts[value][1], index: std.parseInt(value) } for value in std.objectFields(texts) },
  }],

  gauge(title, description, targets, unit, max, steps):: panel('gauge', title, description, targets, unit) {
    fieldConfig+: { defaults+: {
      min: 0,
      max: max,
      thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] + [{ color: s[1], value: s[0] } for s in steps] },
    } },
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, showThresholdMarkers: true },
  },

  // An instant table; `links` maps a column to its data links, shown on each cell of that column.
  table(title, description, targets, links={}, rename={}):: panel('table', title, description, targets, 'short') {
    fieldConfig+: { overrides: [
      { matcher: { id: 'byName', options: column }, properties: [{ id: 'links', value: links[column] }] }
      for column in std.objectFields(links)
    ] },
    options: { showHeader: true, sortBy: [{ displayName: 'Value', desc: true }] },
    transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: rename } }],
  },

  // Panels in reading order, each `[panel, width, height]`, wrapped onto rows of 24 columns.
  layout(cells)::
    std.foldl(function(state, cell)
      local w = cell[1];
      local h = cell[2];
      local wrap = state.x + w > 24;
      local x = if wrap then 0 else state.x;
      local y = if wrap then state.y + state.rowHeight else state.y;
      {
        x: x + w,
        y: y,
        rowHeight: if wrap then h else std.max(state.rowHeight, h),
        panels: state.panels + [cell[0] { id: std.length(state.panels) + 1, gridPos: { x: x, y: y, w: w, h: h } }],
      },
      cells,
      { x: 0, y: 0, rowHeight: 0, panels: [] }).panels,

  // A Prometheus annotation: a mark on every time-series panel wherever `expr` has a value.
  annotation(name, expr, title, text, color):: {
    name: name,
    datasource: $.datasource,
    enable: true,
    hide: false,
    iconColor: color,
    expr: expr,
    step: '60s',
    titleFormat: title,
    textFormat: text,
    useValueForTime: false,
  },

  dashboard(uid, title, description, config, variables, annotations, panels):: {
    uid: uid,
    title: title,
    description: description,
    tags: config.dashboardTags,
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: config.dashboardTimeFrom, to: 'now' },
    timezone: 'browser',
    refresh: config.dashboardRefresh,
    templating: { list: variables },
    annotations: { list: [{
      builtIn: 1,
      datasource: { type: 'grafana', uid: '-- Grafana --' },
      enable: true,
      hide: true,
      iconColor: 'rgba(0, 211, 255, 1)',
      name: 'Annotations & Alerts',
      type: 'dashboard',
    }] + annotations },
    // Both of our dashboards, keeping the time range and the variables they share.
    links: [{
      type: 'dashboards',
      tags: [config.dashboardLinkTag],
      asDropdown: false,
      includeVars: true,
      keepTime: true,
      title: 'kube-event-metrics',
    }],
    panels: panels,
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
  },
}
