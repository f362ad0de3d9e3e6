{{/*
Renders a value that may hold template expressions (a string or any YAML structure).
Usage: {{ include "slm-common.tplvalues.render" (dict "value" .Values.podAnnotations "context" $) }}
*/}}
{{- define "slm-common.tplvalues.render" -}}
{{- $value := typeIs "string" .value | ternary .value (.value | toYaml) -}}
{{- if contains "{{" $value -}}
{{- tpl $value .context -}}
{{- else -}}
{{- $value -}}
{{- end -}}
{{- end -}}
