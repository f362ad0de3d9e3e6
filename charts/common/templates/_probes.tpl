{{/*
An HTTP GET probe from a values block {enabled, path, initialDelaySeconds, periodSeconds,
timeoutSeconds, failureThreshold, successThreshold}; the "enabled" key is dropped.
Usage: {{ include "slm-common.probes.httpGet" (dict "probe" .Values.readinessProbe "port" "http") }}
*/}}
{{- define "slm-common.probes.httpGet" -}}
httpGet:
  path: {{ .probe.path }}
  port: {{ .port }}
{{ omit .probe "enabled" "path" | toYaml }}
{{- end -}}
