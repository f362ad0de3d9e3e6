{{/*
The shadow: a second model version of the task beside the primary (shadow.enabled), in either mode:
beside a RayService too, the shadow is a Deployment of its own (it serves no REST, so it needs no Serve
application, and one pod in a group of its own measures the second version as well as replicas would).
Its Deployment reads the same <task>.requests in a group of its own and publishes to
<task>.shadow.results only (SLM_KAFKA_SHADOW); its pods carry app.kubernetes.io/name <name>-shadow,
so neither the task's Service, PodDisruptionBudget and NetworkPolicy nor the primary Deployment's
selector take them in, and the HPA and the ScaledObject scale the primary Deployment only.
*/}}

{{/* The shadow's name label, "<name>-shadow": keeps its pods out of every selector of the primary's.
The name is cut to 56 characters first so that "-shadow" always survives the 63-character limit:
cutting after the suffix would give a 63-character name back unchanged, the primary's own label. */}}
{{- define "slm-task.shadow.name" -}}
{{- printf "%s-shadow" (include "slm-task.name" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{/* Selector labels of the shadow's pods (name and instance, as the primary's). */}}
{{- define "slm-task.shadow.matchLabels" -}}
app.kubernetes.io/name: {{ include "slm-task.shadow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the shadow's resources: the task's, with the shadow's name and component. */}}
{{- define "slm-task.shadow.labels" -}}
{{- $own := dict "app.kubernetes.io/name" (include "slm-task.shadow.name" .) "app.kubernetes.io/component" "shadow" -}}
{{- toYaml (merge $own (fromYaml (include "slm-task.labels" .))) -}}
{{- end -}}

{{/* The shadow's consumer group: the primary's with "-shadow" (slm-<task>-shadow by default). */}}
{{- define "slm-task.shadow.groupId" -}}
{{- printf "%s-shadow" (include "slm-task.kafka.groupId" .) -}}
{{- end -}}

{{/* Problems of the shadow's values, as a YAML list of messages (joined into slm-task.validateValues). */}}
{{- define "slm-task.validateValues.shadow" -}}
{{- $messages := list -}}
{{- $shadow := .Values.shadow -}}
{{- if $shadow.enabled -}}
{{- if not .Values.global.slm.kafka.bootstrap -}}
{{- $messages = append $messages (printf "%s: shadow.enabled needs global.slm.kafka.bootstrap: a shadow answers Kafka requests only (it refuses REST)" .Values.task) -}}
{{- end -}}
{{- $model := $shadow.model -}}
{{- if not (or $model.image.repository $model.image.tag $model.image.digest $model.dir $model.pvcSubPath $model.url) -}}
{{- $messages = append $messages (printf "%s: shadow.model names no second model version: set shadow.model.image.tag (or .digest, .repository), shadow.model.dir, shadow.model.pvcSubPath or shadow.model.url" .Values.task) -}}
{{- end -}}
{{- /* Either would change nothing under another model.source: the shadow would run the primary's model. */ -}}
{{- if and $model.pvcSubPath (ne .Values.model.source "pvc") -}}
{{- $messages = append $messages (printf "%s: shadow.model.pvcSubPath applies only when model.source=pvc (it is %s): the shadow would run the primary's model; set the shadow's model as model.source reads it (shadow.model.image, .dir or .url)" .Values.task .Values.model.source) -}}
{{- end -}}
{{- if and $model.url (ne .Values.model.source "initContainer") -}}
{{- $messages = append $messages (printf "%s: shadow.model.url applies only when model.source=initContainer (it is %s): the shadow would run the primary's model; set the shadow's model as model.source reads it (shadow.model.image, .dir or .pvcSubPath)" .Values.task .Values.model.source) -}}
{{- end -}}
{{- end -}}
{{- toYaml $messages -}}
{{- end -}}
