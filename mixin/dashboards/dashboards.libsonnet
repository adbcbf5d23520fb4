(import 'overview.libsonnet') +
(import 'health.libsonnet')
