{{/*
Names. Every name is cut to 63 characters (the DNS label limit) with any trailing "-" trimmed.
The helpers read only .Chart.Name, .Release.Name, .Release.Namespace and
.Values.nameOverride / .Values.fullnameOverride / .Values.namespaceOverride, so a parent chart
may call them with a hand-built context: (dict "Chart" (dict "Name" "sentiment") "Release" .Release "Values" $taskValues).
*/}}

{{/*
The chart's name, or .Values.nameOverride.
Usage: {{ include "slm-common.names.name" . }}
*/}}
{{- define "slm-common.names.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified app name: .Values.fullnameOverride, else "<release>-<name>", or just the
release name when it already contains the name.
Usage: {{ include "slm-common.names.fullname" . }}
*/}}
{{- define "slm-common.names.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A name derived from the full name plus a suffix, the full name cut first so the suffix survives.
Usage: {{ include "slm-common.names.suffixed" (dict "suffix" "metrics" "context" $) }}
*/}}
{{- define "slm-common.names.suffixed" -}}
{{- $suffix := printf "-%s" .suffix -}}
{{- $base := include "slm-common.names.fullname" .context | trunc (int (sub 63 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s%s" $base $suffix -}}
{{- end -}}

{{/*
The chart label value: "<name>-<version>" with "+" replaced (label values may not hold it).
Usage: {{ include "slm-common.names.chart" . }}
*/}}
{{- define "slm-common.names.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release namespace, or .Values.namespaceOverride.
Usage: {{ include "slm-common.names.namespace" . }}
*/}}
{{- define "slm-common.names.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The in-cluster DNS name of a Service: <name>.<namespace>.svc.<clusterDomain>.
Usage: {{ include "slm-common.names.serviceDNS" (dict "name" $svc "namespace" $ns "clusterDomain" "cluster.local") }}
*/}}
{{- define "slm-common.names.serviceDNS" -}}
{{- printf "%s.%s.svc.%s" .name .namespace (default "cluster.local" .clusterDomain) -}}
{{- end -}}
