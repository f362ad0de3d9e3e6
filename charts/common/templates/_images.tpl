{{/*
A container image reference: [registry/]repository(:tag|@digest). The digest wins over the tag;
an empty tag falls back to the chart's appVersion.
Usage: {{ include "slm-common.images.image" (dict "imageRoot" .Values.image "global" .Values.global.slm.image "defaultTag" .Chart.AppVersion) }}
  imageRoot: registry, repository, tag, digest (each may be empty)
  global:    registry, tag (optional fallbacks)
*/}}
{{- define "slm-common.images.image" -}}
{{- $global := .global | default dict -}}
{{- $registry := .imageRoot.registry | default $global.registry | default "" -}}
{{- $repository := required "image.repository is required" .imageRoot.repository -}}
{{- $tag := .imageRoot.tag | default $global.tag | default .defaultTag | toString -}}
{{- $name := ternary (printf "%s/%s" $registry $repository) $repository (ne $registry "") -}}
{{- if .imageRoot.digest -}}
{{- printf "%s@%s" $name .imageRoot.digest -}}
{{- else -}}
{{- printf "%s:%s" $name $tag -}}
{{- end -}}
{{- end -}}

{{/*
imagePullSecrets from a list of names (strings or {name: ...} maps), de-duplicated.
Usage: {{ include "slm-common.images.pullSecrets" (dict "secrets" (concat .Values.image.pullSecrets .Values.global.imagePullSecrets)) }}
*/}}
{{- define "slm-common.images.pullSecrets" -}}
{{- $names := list -}}
{{- range .secrets -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- if $names }}
imagePullSecrets:
{{- range ($names | uniq) }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}
