{{/*
The Label Studio review bridge (review.enabled), in either mode: `slm review bridge --task <task>` as a
Deployment of its own beside the primary's Deployment or RayService, with the primary's image, model
folder delivery (the bridge reads the model's labels from the folder), ConfigMap, Kafka credentials
and pod security. Its pods carry app.kubernetes.io/name <name>-review, so neither the task's
Service, PodDisruptionBudget and NetworkPolicy nor the primary's selectors take them in, and the HPA
and the ScaledObject scale the primary only. One replica, replaced with Recreate: the bridge assumes
it is the only writer for its consumer group's partitions. Its own ClusterIP Service (port http)
is where Label Studio's webhook reaches POST /webhook.
*/}}

{{/* The bridge's name label, "<name>-review", cut like the shadow's so that "-review" survives 63 characters. */}}
{{- define "slm-task.review.name" -}}
{{- printf "%s-review" (include "slm-task.name" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{/* Resource name of the bridge's Deployment, Service, Secret, NetworkPolicy and ServiceMonitor: <fullname>-review. */}}
{{- define "slm-task.review.fullname" -}}
{{- include "slm-common.names.suffixed" (dict "suffix" "review" "context" .) -}}
{{- end -}}

{{/* Selector labels of the bridge's pods (name and instance, as the primary's). */}}
{{- define "slm-task.review.matchLabels" -}}
app.kubernetes.io/name: {{ include "slm-task.review.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the bridge's resources: the task's, with the bridge's name and component. */}}
{{- define "slm-task.review.labels" -}}
{{- $own := dict "app.kubernetes.io/name" (include "slm-task.review.name" .) "app.kubernetes.io/component" "review" -}}
{{- toYaml (merge $own (fromYaml (include "slm-task.labels" .))) -}}
{{- end -}}

{{/* The bridge's consumer group on <task>.review (SLM_REVIEW_GROUP_ID): the primary's with "-review-bridge",
slm-<task>-review-bridge by default (the bridge's own default), so that a kafka.groupId chosen for the
broker's ACLs carries over. The bridge never joins SLM_KAFKA_GROUP_ID, the primary's group. */}}
{{- define "slm-task.review.groupId" -}}
{{- printf "%s-review-bridge" (include "slm-task.kafka.groupId" .) -}}
{{- end -}}

{{/* The Secret holding Label Studio's API token: review.labelStudio.existingSecret, else the one the chart creates. */}}
{{- define "slm-task.review.secretName" -}}
{{- default (include "slm-task.review.fullname" .) .Values.review.labelStudio.existingSecret -}}
{{- end -}}

{{/* Where Label Studio reaches POST /webhook: review.webhookUrl, else the bridge Service's cluster DNS name. */}}
{{- define "slm-task.review.webhookUrl" -}}
{{- if .Values.review.webhookUrl -}}
{{- .Values.review.webhookUrl -}}
{{- else -}}
{{- $dns := include "slm-common.names.serviceDNS" (dict "name" (include "slm-task.review.fullname" .) "namespace" (include "slm-task.namespace" .) "clusterDomain" .Values.global.slm.clusterDomain) -}}
{{- printf "http://%s:%v/webhook" $dns .Values.review.containerPort -}}
{{- end -}}
{{- end -}}

{{/* The TCP port of review.labelStudio.url (its explicit port, else 443 for https and 80 for http), for the egress rule. */}}
{{- define "slm-task.review.labelStudioPort" -}}
{{- $url := urlParse .Values.review.labelStudio.url -}}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" -}}
{{- if $port -}}
{{- $port -}}
{{- else if eq $url.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* Problems of the bridge's values, as a YAML list of messages (joined into slm-task.validateValues). */}}
{{- define "slm-task.validateValues.review" -}}
{{- $messages := list -}}
{{- $review := .Values.review -}}
{{- if $review.enabled -}}
{{- $ls := $review.labelStudio -}}
{{- if not $ls.url -}}
{{- $messages = append $messages (printf "%s: review.enabled needs review.labelStudio.url, the base URL of the team's Label Studio (SLM_REVIEW_LABEL_STUDIO_URL). E.g. https://label-studio.example.com" .Values.task) -}}
{{- end -}}
{{- if not (or $ls.existingSecret $ls.token) -}}
{{- $messages = append $messages (printf "%s: review.enabled needs Label Studio's API token (SLM_REVIEW_LABEL_STUDIO_TOKEN): name an existing Secret in review.labelStudio.existingSecret (key review.labelStudio.existingSecretKey) or set review.labelStudio.token" .Values.task) -}}
{{- end -}}
{{- if and $ls.existingSecret $ls.token -}}
{{- $messages = append $messages (printf "%s: review.labelStudio.existingSecret and review.labelStudio.token are both set; set one (the token goes into the existing Secret under key %s)" .Values.task $ls.existingSecretKey) -}}
{{- end -}}
{{- if and $ls.existingSecret $ls.webhookSecret -}}
{{- $messages = append $messages (printf "%s: review.labelStudio.webhookSecret goes only into the Secret the chart creates from review.labelStudio.token; with review.labelStudio.existingSecret put it in that Secret under key %s" .Values.task $ls.webhookSecretKey) -}}
{{- end -}}
{{- if not .Values.global.slm.kafka.bootstrap -}}
{{- $messages = append $messages (printf "%s: review.enabled needs global.slm.kafka.bootstrap: the bridge takes the task's review records from Kafka and hands the reviewers' verdicts back to it" .Values.task) -}}
{{- end -}}
{{- end -}}
{{- toYaml $messages -}}
{{- end -}}
