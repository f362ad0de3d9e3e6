{{/*
Standard Kubernetes labels (app.kubernetes.io/*) plus helm.sh/chart, with extra labels merged in.
Usage: {{ include "slm-common.labels.standard" (dict "customLabels" .Values.commonLabels "context" $) }}
*/}}
{{- define "slm-common.labels.standard" -}}
{{- $context := .context -}}
{{- $labels := dict
      "app.kubernetes.io/name" (include "slm-common.names.name" $context)
      "helm.sh/chart" (include "slm-common.names.chart" $context)
      "app.kubernetes.io/instance" $context.Release.Name
      "app.kubernetes.io/managed-by" $context.Release.Service -}}
{{- with $context.Chart.AppVersion -}}
{{- $_ := set $labels "app.kubernetes.io/version" (. | toString | replace "+" "_" | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{- with .customLabels -}}
{{- $labels = merge $labels . -}}
{{- end -}}
{{- toYaml $labels -}}
{{- end -}}

{{/*
Selector labels: only name and instance, which never change over the life of a release
(a Deployment's selector is immutable).
Usage: {{ include "slm-common.labels.matchLabels" (dict "context" $) }}
*/}}
{{- define "slm-common.labels.matchLabels" -}}
app.kubernetes.io/name: {{ include "slm-common.names.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- end -}}
