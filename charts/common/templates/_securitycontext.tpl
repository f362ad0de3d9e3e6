{{/*
A container securityContext from a values block {enabled, ...}: the block minus "enabled",
or nothing when disabled. The hardened default lives in each chart's values.yaml.
Usage: {{- include "slm-common.securityContext.container" .Values.containerSecurityContext | nindent 10 }}
*/}}
{{- define "slm-common.securityContext.container" -}}
{{- if .enabled -}}
securityContext:
  {{- omit . "enabled" | toYaml | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
A pod securityContext from a values block {enabled, ...}: the block minus "enabled".
Usage: {{- include "slm-common.securityContext.pod" .Values.podSecurityContext | nindent 6 }}
*/}}
{{- define "slm-common.securityContext.pod" -}}
{{- if .enabled -}}
securityContext:
  {{- omit . "enabled" | toYaml | nindent 2 }}
{{- end -}}
{{- end -}}
