{{/*
slm-task helpers. Names, labels, images, probes and security contexts delegate to slm-common;
what is specific to a task (its service class, topics, settings, model volume) lives here.
*/}}

{{/* The resource name stem: the chart name (the task, under the umbrella's alias) or nameOverride. */}}
{{- define "slm-task.name" -}}
{{- include "slm-common.names.name" . -}}
{{- end -}}

{{/* Full name of the task's resources. */}}
{{- define "slm-task.fullname" -}}
{{- include "slm-common.names.fullname" . -}}
{{- end -}}

{{/* Namespace of every resource. */}}
{{- define "slm-task.namespace" -}}
{{- include "slm-common.names.namespace" . -}}
{{- end -}}

{{/* Standard labels plus the task label and commonLabels. */}}
{{- define "slm-task.labels" -}}
{{- $custom := merge (dict "app.kubernetes.io/part-of" "slm-services" "slm-services/task" .Values.task) .Values.commonLabels -}}
{{- include "slm-common.labels.standard" (dict "customLabels" $custom "context" .) -}}
{{- end -}}

{{/* Selector labels (name and instance only). */}}
{{- define "slm-task.matchLabels" -}}
{{- include "slm-common.labels.matchLabels" (dict "context" .) -}}
{{- end -}}

{{/* The BentoML service class: serviceClass or the task name capitalised (helpdesk -> Helpdesk). */}}
{{- define "slm-task.serviceClass" -}}
{{- default (.Values.task | title) .Values.serviceClass -}}
{{- end -}}

{{/* BentoML import string: services.<task>.service:<Class>. */}}
{{- define "slm-task.bentoService" -}}
{{- printf "services.%s.service:%s" .Values.task (include "slm-task.serviceClass" .) -}}
{{- end -}}

{{/* Ray Serve application import path: the project's application builder (args: task, partitions). */}}
{{- define "slm-task.rayImportPath" -}}
{{- default "shared.ray_replicas:build_app" .Values.ray.importPath -}}
{{- end -}}

{{/* The task image. */}}
{{- define "slm-task.image" -}}
{{- $image := deepCopy .Values.image -}}
{{- $_ := set $image "repository" (default (printf "slm-%s" .Values.task) .Values.image.repository) -}}
{{- include "slm-common.images.image" (dict "imageRoot" $image "global" .Values.global.slm.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* imagePullSecrets of the pods. */}}
{{- define "slm-task.imagePullSecrets" -}}
{{- include "slm-common.images.pullSecrets" (dict "secrets" (concat (.Values.image.pullSecrets | default list) (.Values.global.imagePullSecrets | default list))) -}}
{{- end -}}

{{/* ServiceAccount name. */}}
{{- define "slm-task.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "slm-task.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the Kafka loop is on (a bootstrap address is set). */}}
{{- define "slm-task.kafka.enabled" -}}
{{- if .Values.global.slm.kafka.bootstrap -}}true{{- end -}}
{{- end -}}

{{/* Consumer group: kafka.groupId or slm-<task>. */}}
{{- define "slm-task.kafka.groupId" -}}
{{- default (printf "slm-%s" .Values.task) .Values.kafka.groupId -}}
{{- end -}}

{{/*
A topic name: <prefix><task>.<kind>, kind one of requests, results, review, dlq, feedback.
Usage: {{ include "slm-task.kafka.topic" (dict "kind" "requests" "context" $) }}
*/}}
{{- define "slm-task.kafka.topic" -}}
{{- printf "%s%s.%s" .context.Values.global.slm.kafka.topicPrefix .context.Values.task .kind -}}
{{- end -}}

{{/* "true" when TLS is on (SSL or SASL_SSL). */}}
{{- define "slm-task.kafka.tls" -}}
{{- if has .Values.global.slm.kafka.securityProtocol (list "SSL" "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{/* Where the Kafka CA certificate is mounted. */}}
{{- define "slm-task.kafka.caDir" -}}/etc/slm/kafka-ca{{- end -}}
{{- define "slm-task.apiKeysDir" -}}/etc/slm/api-keys{{- end -}}
{{- define "slm-task.kafka.clientCertDir" -}}/etc/slm/kafka-client{{- end -}}

{{/* Model folder in the container (SLM_MODEL_DIR). */}}
{{- define "slm-task.model.dir" -}}
{{- if .Values.model.dir -}}
{{- .Values.model.dir -}}
{{- else if eq .Values.model.source "image" -}}
{{- printf "/app/models/%s" .Values.task -}}
{{- else if eq .Values.model.source "pvc" -}}
{{- printf "/models/%s" (default .Values.task .Values.model.pvc.subPath) -}}
{{- else -}}
{{- printf "/models/%s" .Values.task -}}
{{- end -}}
{{- end -}}

{{/* Container environment beyond the ConfigMap: Kafka credentials from the existing Secret, then extraEnvVars. */}}
{{- define "slm-task.env" -}}
{{- $kafka := .Values.global.slm.kafka -}}
{{- if and (include "slm-task.kafka.enabled" .) .Values.kafka.staticMembership }}
{{- /* The pod name survives a container restart: a crashed consumer rejoins as the same static member. */}}
- name: SLM_KAFKA_GROUP_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- if $kafka.sasl.mechanism }}
- name: SLM_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: {{ $kafka.sasl.usernameKey }}
- name: SLM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: {{ $kafka.sasl.passwordKey }}
{{- end }}
{{- with .Values.extraEnvVars }}
{{ include "slm-common.tplvalues.render" (dict "value" . "context" $) }}
{{- end }}
{{- end -}}

{{/* envFrom: the task ConfigMap, then extraEnvVarsCM and extraEnvVarsSecret. */}}
{{- define "slm-task.envFrom" -}}
- configMapRef:
    name: {{ include "slm-task.fullname" . }}
{{- with .Values.extraEnvVarsCM }}
- configMapRef:
    name: {{ . }}
{{- end }}
{{- with .Values.extraEnvVarsSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{/*
Volumes of a service pod: /tmp, the model (pvc or emptyDir), the Kafka CA, extraVolumes;
with (dict "ray" true) also /dev/shm for Ray's object store.
Usage: {{ include "slm-task.volumes" (dict "context" $ "ray" true) }}
*/}}
{{- define "slm-task.volumes" -}}
{{- $ := .context -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $.Values.tmpSizeLimit }}
{{- if .ray }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $.Values.ray.shmSizeLimit }}
{{- end }}
{{- if eq $.Values.model.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ $.Values.model.pvc.claimName }}
    readOnly: true
{{- else if eq $.Values.model.source "initContainer" }}
- name: model
  emptyDir:
    sizeLimit: {{ $.Values.model.emptyDirSizeLimit }}
{{- end }}
{{- with $.Values.global.slm.apiKeys.existingSecret }}
- name: api-keys
  secret:
    secretName: {{ . }}
    items:
      - key: {{ $.Values.global.slm.apiKeys.key }}
        path: {{ $.Values.global.slm.apiKeys.key }}
{{- end }}
{{- with $.Values.global.slm.kafka.tls.clientCertSecret }}
- name: kafka-client-cert
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.global.slm.kafka.tls.certKey }}
        path: tls.crt
      - key: {{ $.Values.global.slm.kafka.tls.keyKey }}
        path: tls.key
{{- end }}
{{- if $.Values.global.slm.kafka.tls.existingSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $.Values.global.slm.kafka.tls.existingSecret }}
    items:
      - key: {{ $.Values.global.slm.kafka.tls.caKey }}
        path: {{ $.Values.global.slm.kafka.tls.caKey }}
{{- end }}
{{- with $.Values.extraVolumes }}
{{ include "slm-common.tplvalues.render" (dict "value" . "context" $) }}
{{- end }}
{{- end -}}

{{/*
Volume mounts of the service container (and of the Ray containers).
Usage: {{ include "slm-task.volumeMounts" (dict "context" $ "ray" true) }}
*/}}
{{- define "slm-task.volumeMounts" -}}
{{- $ := .context -}}
- name: tmp
  mountPath: /tmp
{{- if .ray }}
- name: dshm
  mountPath: /dev/shm
{{- end }}
{{- if ne $.Values.model.source "image" }}
- name: model
  mountPath: /models
  readOnly: {{ eq $.Values.model.source "pvc" }}
{{- end }}
{{- if $.Values.global.slm.apiKeys.existingSecret }}
{{- /* The folder, not a subPath: the kubelet swaps a changed Secret in, and the service re-reads it. */}}
- name: api-keys
  mountPath: {{ include "slm-task.apiKeysDir" $ }}
  readOnly: true
{{- end }}
{{- if $.Values.global.slm.kafka.tls.existingSecret }}
- name: kafka-ca
  mountPath: {{ include "slm-task.kafka.caDir" $ }}
  readOnly: true
{{- end }}
{{- if $.Values.global.slm.kafka.tls.clientCertSecret }}
- name: kafka-client-cert
  mountPath: {{ include "slm-task.kafka.clientCertDir" $ }}
  readOnly: true
{{- end }}
{{- with $.Values.extraVolumeMounts }}
{{ include "slm-common.tplvalues.render" (dict "value" . "context" $) }}
{{- end }}
{{- end -}}

{{/* Init containers: the model fetcher when model.source=initContainer. */}}
{{- define "slm-task.initContainers" -}}
{{- if eq .Values.model.source "initContainer" -}}
{{- $init := .Values.model.initContainer -}}
- name: fetch-model
  image: {{ $init.image }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- with $init.command }}
  command: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $init.args }}
  args: {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    - name: SLM_TASK
      value: {{ .Values.task | quote }}
    - name: SLM_MODEL_DIR
      value: {{ include "slm-task.model.dir" . | quote }}
    - name: SLM_MODEL_URL
      value: {{ $init.url | quote }}
    - name: HOME
      value: /tmp
  {{- with $init.extraEnvVarsSecret }}
  envFrom:
    - secretRef:
        name: {{ . }}
  {{- end }}
  {{- include "slm-common.securityContext.container" .Values.containerSecurityContext | nindent 2 }}
  resources: {{- toYaml $init.resources | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: model
      mountPath: /models
{{- end -}}
{{- end -}}

{{/* Pod-level fields shared by the Deployment and the Ray pods (below "spec:" of a pod template). */}}
{{- define "slm-task.podCommon" -}}
{{- include "slm-task.imagePullSecrets" . }}
{{ include "slm-common.securityContext.pod" .Values.podSecurityContext }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- include "slm-common.tplvalues.render" (dict "value" . "context" $) | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- include "slm-common.tplvalues.render" (dict "value" . "context" $) | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- include "slm-common.tplvalues.render" (dict "value" . "context" $) | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints: {{- include "slm-common.tplvalues.render" (dict "value" . "context" $) | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template annotations: the config checksum (rolls pods when settings change) plus podAnnotations. */}}
{{- define "slm-task.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ include "slm-common.tplvalues.render" (dict "value" . "context" $) }}
{{- end }}
{{- end -}}

{{/* Pod template labels: standard labels plus podLabels. */}}
{{- define "slm-task.podLabels" -}}
{{- $labels := fromYaml (include "slm-task.labels" .) -}}
{{- toYaml (merge $labels .Values.podLabels) -}}
{{- end -}}

{{/* "true" when Strimzi KafkaTopics are rendered. */}}
{{- define "slm-task.strimzi.enabled" -}}
{{- if .Values.global.slm.strimzi.enabled -}}true{{- end -}}
{{- end -}}

{{/*
Checks that JSON schema cannot express (relations between values), joined into one failure.
values.schema.json covers types, ranges and enums.
*/}}
{{- define "slm-task.validateValues" -}}
{{- $kafka := .Values.global.slm.kafka -}}
{{- $messages := list -}}
{{- $fullname := include "slm-task.fullname" . -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) -}}
{{- $messages = append $messages (printf "%s: the Service name %q (release %q) must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter; choose another release name or set fullnameOverride" .Values.task $fullname .Release.Name) -}}
{{- end -}}
{{- if eq .Values.mode "ray" -}}
{{- range $key := list "minAvailable" "maxUnavailable" -}}
{{- if contains "%" (toString (get $.Values.pdb $key)) -}}
{{- $messages = append $messages (printf "%s: pdb.%s must be a number of pods in ray mode: the worker pods belong to a RayCluster, which has no scale subresource to take a percentage of" $.Values.task $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $kafka.tls.clientCertSecret (not (has $kafka.securityProtocol (list "SSL" "SASL_SSL"))) -}}
{{- $messages = append $messages (printf "global.slm.kafka.tls.clientCertSecret: a client certificate needs securityProtocol SSL or SASL_SSL, not %s" $kafka.securityProtocol) -}}
{{- end -}}
{{- if and (eq .Values.kafka.delivery "exactly_once") (not .Values.kafka.staticMembership) -}}
{{- $messages = append $messages (printf "%s: kafka.delivery=exactly_once needs kafka.staticMembership: the transactional id is the pod name, so a restarted container fences its predecessor and aborts its open transaction" .Values.task) -}}
{{- end -}}
{{- if and .Values.keda.enabled (eq .Values.mode "ray") -}}
{{- $messages = append $messages (printf "%s: keda.enabled needs mode=deployment (a RayService has no scale subresource; in ray mode replicas follow ray.serve.autoscaling)" .Values.task) -}}
{{- end -}}
{{- if and .Values.keda.enabled .Values.autoscaling.enabled -}}
{{- $messages = append $messages (printf "%s: keda.enabled and autoscaling.enabled both scale the Deployment; enable one (KEDA creates its own HPA)" .Values.task) -}}
{{- end -}}
{{- if and .Values.keda.enabled (not $kafka.bootstrap) -}}
{{- $messages = append $messages (printf "%s: keda.enabled needs global.slm.kafka.bootstrap (it scales on the consumer group's lag)" .Values.task) -}}
{{- end -}}
{{- if and $kafka.sasl.mechanism (not $kafka.sasl.existingSecret) -}}
{{- $messages = append $messages "global.slm.kafka.sasl.existingSecret: must name an existing Secret with the SASL username and password when global.slm.kafka.sasl.mechanism is set" -}}
{{- end -}}
{{- if and $kafka.sasl.mechanism (not (has $kafka.securityProtocol (list "SASL_PLAINTEXT" "SASL_SSL"))) -}}
{{- $messages = append $messages (printf "global.slm.kafka.securityProtocol: %q does not use SASL; set SASL_PLAINTEXT or SASL_SSL with global.slm.kafka.sasl.mechanism" $kafka.securityProtocol) -}}
{{- end -}}
{{- if and (has $kafka.securityProtocol (list "SASL_PLAINTEXT" "SASL_SSL")) (not $kafka.sasl.mechanism) -}}
{{- $messages = append $messages (printf "global.slm.kafka.sasl.mechanism: must be set when global.slm.kafka.securityProtocol is %s" $kafka.securityProtocol) -}}
{{- end -}}
{{- if and .Values.global.slm.strimzi.enabled (not .Values.global.slm.strimzi.clusterName) -}}
{{- $messages = append $messages "global.slm.strimzi.clusterName: must name the Strimzi Kafka cluster when global.slm.strimzi.enabled is true" -}}
{{- end -}}
{{- if and (eq .Values.model.source "pvc") (not .Values.model.pvc.claimName) -}}
{{- $messages = append $messages (printf "%s: model.pvc.claimName must name an existing PersistentVolumeClaim when model.source=pvc" .Values.task) -}}
{{- end -}}
{{- if and (eq .Values.model.source "initContainer") (not .Values.model.initContainer.image) -}}
{{- $messages = append $messages (printf "%s: model.initContainer.image must be set when model.source=initContainer" .Values.task) -}}
{{- end -}}
{{- if and (eq .Values.mode "deployment") .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- $messages = append $messages (printf "%s: autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v)" .Values.task .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and (eq .Values.mode "ray") .Values.ray.serve.autoscaling.enabled (gt (int .Values.ray.serve.autoscaling.minReplicas) (int .Values.ray.serve.autoscaling.maxReplicas)) -}}
{{- $messages = append $messages (printf "%s: ray.serve.autoscaling.minReplicas (%v) is above ray.serve.autoscaling.maxReplicas (%v)" .Values.task .Values.ray.serve.autoscaling.minReplicas .Values.ray.serve.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and (eq .Values.mode "ray") (gt (int .Values.ray.worker.minReplicas) (int .Values.ray.worker.maxReplicas)) -}}
{{- $messages = append $messages (printf "%s: ray.worker.minReplicas (%v) is above ray.worker.maxReplicas (%v)" .Values.task .Values.ray.worker.minReplicas .Values.ray.worker.maxReplicas) -}}
{{- end -}}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) -}}
{{- $messages = append $messages (printf "%s: keda.minReplicaCount (%v) is above keda.maxReplicaCount (%v)" .Values.task .Values.keda.minReplicaCount .Values.keda.maxReplicaCount) -}}
{{- end -}}
{{- $messages = concat $messages (fromYamlArray (include "slm-task.validateValues.shadow" .)) -}}
{{- $messages = concat $messages (fromYamlArray (include "slm-task.validateValues.review" .)) -}}
{{- include "slm-common.validations.fail" $messages -}}
{{- end -}}
