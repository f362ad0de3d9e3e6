{{/*
Resource requests and limits for a preset name (none, nano, micro, small, medium, large, xlarge).
Sized for an int8 MiniLM encoder under ONNX Runtime: memory is model + tokenizer + batch buffers.
Used only when the chart's "resources" block is empty.
Usage: {{ include "slm-common.resources.preset" (dict "type" "small") }}
*/}}
{{- define "slm-common.resources.preset" -}}
{{- $presets := dict
  "nano"   (dict "requests" (dict "cpu" "100m" "memory" "256Mi") "limits" (dict "memory" "512Mi"))
  "micro"  (dict "requests" (dict "cpu" "250m" "memory" "384Mi") "limits" (dict "memory" "768Mi"))
  "small"  (dict "requests" (dict "cpu" "500m" "memory" "512Mi") "limits" (dict "memory" "1Gi"))
  "medium" (dict "requests" (dict "cpu" "1" "memory" "1Gi") "limits" (dict "memory" "2Gi"))
  "large"  (dict "requests" (dict "cpu" "2" "memory" "2Gi") "limits" (dict "memory" "4Gi"))
  "xlarge" (dict "requests" (dict "cpu" "4" "memory" "4Gi") "limits" (dict "memory" "8Gi"))
-}}
{{- if hasKey $presets .type -}}
{{- index $presets .type | toYaml -}}
{{- else if ne .type "none" -}}
{{- printf "resources preset %q is not one of: none, %s" .type (keys $presets | sortAlpha | join ", ") | fail -}}
{{- end -}}
{{- end -}}

{{/*
The "resources" block if it is set, else the preset.
Usage: {{ include "slm-common.resources.render" (dict "resources" .Values.resources "preset" .Values.resourcesPreset) }}
*/}}
{{- define "slm-common.resources.render" -}}
{{- if .resources -}}
{{- toYaml .resources -}}
{{- else -}}
{{- include "slm-common.resources.preset" (dict "type" (default "none" .preset)) -}}
{{- end -}}
{{- end -}}
